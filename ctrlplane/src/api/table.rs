//! Plain-text tables for `sluicectl`: columns as wide as their widest cell, two spaces
//! between columns, text left-aligned and numbers right-aligned, no trailing blanks.

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table under construction: a header row, then rows of as many cells.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table { columns: columns.iter().map(|(h, a)| (h.to_string(), *a)).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    /// The width of each column: its widest cell, header included (in characters).
    pub fn widths(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, (header, _))| {
                self.rows.iter().map(|r| r[i].chars().count()).chain([header.chars().count()]).max().unwrap_or(0)
            })
            .collect()
    }

    /// The header line, laid out with `widths`.
    pub fn header_line(&self, widths: &[usize]) -> String {
        let headers: Vec<String> = self.columns.iter().map(|(h, _)| h.clone()).collect();
        self.line(&headers, widths)
    }

    /// Row `index`, laid out with `widths`.
    pub fn row_line(&self, index: usize, widths: &[usize]) -> String {
        self.line(&self.rows[index], widths)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The whole table, header first, each line ending in a newline.
    pub fn render(&self) -> String {
        let widths = self.widths();
        let mut out = self.header_line(&widths);
        out.push('\n');
        for i in 0..self.rows.len() {
            out.push_str(&self.row_line(i, &widths));
            out.push('\n');
        }
        out
    }

    fn line(&self, cells: &[String], widths: &[usize]) -> String {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            match self.columns[i].1 {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
            }
        }
        line.truncate(line.trim_end().len());
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_take_the_width_of_their_widest_cell() {
        let mut table = Table::new(&[("NAME", Align::Left), ("PACKETS", Align::Right), ("NOTE", Align::Left)]);
        table.row(vec!["wan".into(), "1234567890".into(), "x".into()]);
        table.row(vec!["lan-long-name".into(), "5".into(), String::new()]);
        assert_eq!(
            table.render(),
            "NAME              PACKETS  NOTE\n\
             wan            1234567890  x\n\
             lan-long-name           5\n"
        );
    }

    #[test]
    fn short_rows_are_padded_with_blank_cells() {
        let mut table = Table::new(&[("A", Align::Left), ("B", Align::Right)]);
        table.row(vec!["only".into()]);
        assert_eq!(table.render(), "A     B\nonly\n");
    }
}
