//! SYN cookies for the SYN proxy (`synproxy = true`, issue 17): the initial sequence number a
//! worker answers a SYN with, from which the client's ACK alone proves the handshake, so that
//! no state is kept for a SYN and a flood of spoofed ones costs nothing but the answers.
//!
//! A cookie is 32 bits: a 24-bit MAC, then a 3-bit index into `MSS_TABLE` (the largest entry
//! not above the client's MSS), then the low 5 bits of the period counter (64 s periods). The
//! MAC is SipHash-2-4, keyed by a secret drawn at start and mixed with the period, over the
//! 4-tuple, the client's initial sequence number, the MSS index and the period: 24 verified
//! bits, so a random ACK passes once in about 16.7 million (DPVS's cookies verify about 12).
//! A cookie is accepted for the period it was made in and the one before (64 to 128 s).
//!
//! The options a client offered (window scale, SACK, ECN), and the window scale Sluice offered
//! it, ride in the low 11 bits of the timestamp value of the SYN+ACK when the client sent
//! timestamps, as Linux does; the ACK echoes them back. Without timestamps only the MSS
//! survives, as with any SYN cookie.

use std::net::Ipv4Addr;

/// MSS values a cookie can carry (3 bits), smallest first.
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1300, 1360, 1400, 1440, 1452, 1460];
/// Seconds a secret period lasts.
pub const PERIOD_S: u64 = 64;
const MAC_BITS: u32 = 24;

/// The flow a cookie belongs to: the client's SYN as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub client: (Ipv4Addr, u16),
    pub vip: (Ipv4Addr, u16),
    /// The client's initial sequence number (the SYN's).
    pub client_isn: u32,
}

/// What a valid cookie tells of the SYN it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    pub mss: u16,
}

/// The TCP options of a SYN the timestamp carries: window scale (0-14, or none), SACK, ECN;
/// and the window scale the SYN+ACK offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynOptions {
    pub window_scale: Option<u8>,
    pub sack: bool,
    pub ecn: bool,
    pub offered_scale: u8,
}

/// Timestamp bits the options take.
const OPTION_BITS: u32 = 0x7ff;

impl SynOptions {
    /// The low 11 bits of a timestamp value: scale + 1 (0: none) in 4 bits, SACK, ECN, one bit
    /// set so that the value is never taken for "no options" by mistake, the offered scale.
    pub fn encode(self) -> u32 {
        let scale = self.window_scale.map_or(0, |s| u32::from(s.min(14)) + 1);
        scale
            | u32::from(self.sack) << 4
            | u32::from(self.ecn) << 5
            | 1 << 6
            | u32::from(self.offered_scale.min(14)) << 7
    }

    /// The options from the low bits of an echoed timestamp; `None` if they were not made by
    /// `encode`.
    pub fn decode(tsval: u32) -> Option<SynOptions> {
        if tsval & 1 << 6 == 0 {
            return None;
        }
        let scale = (tsval & 0x0f) as u8;
        Some(SynOptions {
            window_scale: scale.checked_sub(1),
            sack: tsval & 1 << 4 != 0,
            ecn: tsval & 1 << 5 != 0,
            offered_scale: ((tsval >> 7) & 0x0f) as u8,
        })
    }

    /// A timestamp value at `now_ms` that carries these options: the clock's upper bits, ours
    /// in the low 11.
    pub fn timestamp(self, now_ms: u64) -> u32 {
        (now_ms as u32 & !OPTION_BITS) | self.encode()
    }
}

/// Makes and checks cookies with one worker's secret.
#[derive(Clone)]
pub struct Cookies {
    secret: [u64; 2],
}

impl Cookies {
    /// With a secret from the kernel's random source.
    pub fn new() -> Cookies {
        let mut bytes = [0u8; 16];
        // SAFETY: a buffer of the length given; getrandom(2) fills it or fails.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        assert_eq!(n, 16, "getrandom: {}", std::io::Error::last_os_error());
        Cookies::with_secret([
            u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")),
        ])
    }

    /// With a given secret (tests).
    pub fn with_secret(secret: [u64; 2]) -> Cookies {
        Cookies { secret }
    }

    /// The cookie for `flow` whose client offered MSS `mss`, at `now_s`.
    pub fn make(&self, flow: &Flow, mss: u16, now_s: u64) -> u32 {
        let index = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32;
        let period = now_s / PERIOD_S;
        let mac = self.mac(flow, index, period);
        mac << (32 - MAC_BITS) | index << 5 | (period as u32 & 0x1f)
    }

    /// What the SYN answered with `cookie` offered, if `cookie` is one made for `flow` in this
    /// period or the one before.
    pub fn check(&self, flow: &Flow, cookie: u32, now_s: u64) -> Option<Offered> {
        let index = (cookie >> 5) & 0x7;
        let now = now_s / PERIOD_S;
        let period = [now, now.wrapping_sub(1)].into_iter().find(|p| *p as u32 & 0x1f == cookie & 0x1f)?;
        (self.mac(flow, index, period) == cookie >> (32 - MAC_BITS)).then(|| Offered { mss: MSS_TABLE[index as usize] })
    }

    fn mac(&self, flow: &Flow, index: u32, period: u64) -> u32 {
        let words = [
            u64::from(u32::from(flow.client.0)) << 32 | u64::from(u32::from(flow.vip.0)),
            u64::from(flow.client.1) << 48 | u64::from(flow.vip.1) << 32 | u64::from(flow.client_isn),
            period << 3 | u64::from(index),
        ];
        (siphash24(self.secret, &words) >> 40) as u32
    }
}

impl Default for Cookies {
    fn default() -> Cookies {
        Cookies::new()
    }
}

/// SipHash-2-4 (Aumasson and Bernstein) of whole 64-bit words, keyed by `key`.
fn siphash24(key: [u64; 2], words: &[u64]) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    let round = |v: &mut [u64; 4]| {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    };
    let compress = |m: u64, v: &mut [u64; 4]| {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    };
    for &m in words {
        compress(m, &mut v);
    }
    compress(((words.len() * 8) as u64) << 56, &mut v);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(port: u16, isn: u32) -> Flow {
        Flow { client: (Ipv4Addr::new(198, 18, 0, 2), port), vip: (Ipv4Addr::new(198, 18, 0, 10), 80), client_isn: isn }
    }

    #[test]
    fn siphash_matches_the_reference_vector() {
        // The paper's key 00..0f over the 8 bytes 00..07 (one word, little-endian).
        let key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        assert_eq!(siphash24(key, &[0x0706_0504_0302_0100]), 0x93f5_f579_9a93_2462);
    }

    #[test]
    fn a_cookie_checks_for_its_flow_in_its_period_and_the_next_only() {
        let c = Cookies::with_secret([1, 2]);
        let f = flow(40000, 123_456);
        let cookie = c.make(&f, 1460, 1000);
        assert_eq!(c.check(&f, cookie, 1000), Some(Offered { mss: 1460 }));
        assert_eq!(c.check(&f, cookie, 1000 + PERIOD_S), Some(Offered { mss: 1460 }), "the next period");
        assert_eq!(c.check(&f, cookie, 1000 + 2 * PERIOD_S), None, "expired");
        assert_eq!(c.check(&flow(40001, 123_456), cookie, 1000), None, "another port");
        assert_eq!(c.check(&flow(40000, 123_457), cookie, 1000), None, "another client ISN");
        assert_eq!(Cookies::with_secret([1, 3]).check(&f, cookie, 1000), None, "another secret");
        assert_eq!(c.check(&f, c.make(&f, 1400, 1000), 1000), Some(Offered { mss: 1400 }));
        assert_eq!(c.check(&f, c.make(&f, 1420, 1000), 1000), Some(Offered { mss: 1400 }), "rounded down");
        assert_eq!(c.check(&f, c.make(&f, 100, 1000), 1000), Some(Offered { mss: 536 }));
    }

    #[test]
    fn random_acks_pass_about_once_in_two_to_the_24() {
        let c = Cookies::with_secret([0xdead, 0xbeef]);
        let f = flow(40000, 7);
        let mut x = 0x1234_5678_9abc_def0u64;
        let passed = (0..2_000_000)
            .filter(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.check(&f, x as u32, 1000).is_some()
            })
            .count();
        // 2 million guesses, each passing with probability 2 periods x 1/32 x 2^-24 ... < 1e-6.
        assert!(passed <= 1, "{passed} random ACKs passed");
    }

    #[test]
    fn syn_options_ride_in_the_timestamp() {
        for scale in [None, Some(0), Some(7), Some(14)] {
            for (sack, ecn) in [(false, false), (true, false), (false, true), (true, true)] {
                let o = SynOptions { window_scale: scale, sack, ecn, offered_scale: 10 };
                let ts = o.timestamp(0x1234_5678);
                assert_eq!(ts & !OPTION_BITS, 0x1234_5678 & !OPTION_BITS);
                assert_eq!(SynOptions::decode(ts), Some(o));
            }
        }
        assert_eq!(SynOptions::decode(0x1234_5600), None, "not one of ours");
    }
}
