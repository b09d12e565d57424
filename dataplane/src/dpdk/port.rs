use std::ffi::CString;
use std::fmt;

use super::error::check;
use super::{DpdkError, Mempool};

/// Descriptors per rx and tx queue before the driver adjusts them to its limits.
const RING_SIZE: u16 = 1024;

// RTE_ETH_RSS_* are function-like macros in the headers, so bindgen cannot see them.
const RSS_IPV4: u64 = 1 << 2;
const RSS_FRAG_IPV4: u64 = 1 << 3;
const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
// RTE_ETH_{RX,TX}_OFFLOAD_{IPV4,UDP,TCP}_CKSUM: the same bits for rx and tx.
const OFFLOAD_CKSUM: u64 = (1 << 1) | (1 << 2) | (1 << 3);

/// An ethdev port. Stopped and closed on drop; a port Sluice created as a virtual device
/// (the kernel exception path's tap) is also removed, taking its kernel interface with it.
pub struct Port {
    id: u16,
    name: String,
    vdev: Option<CString>,
    started: bool,
    checksum_offload: bool,
}

/// The port's RSS hash key and redirection table (queue per entry), as the NIC uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssConfig {
    pub key: Vec<u8>,
    pub reta: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC because the rx queue was full.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Rx failures for lack of an mbuf.
    pub rx_nombuf: u64,
}

impl Port {
    /// The port that the EAL created for `device` (a vdev name such as `net_af_packet0`, or a
    /// PCI address).
    pub fn open(device: &str) -> Result<Port, DpdkError> {
        let id = port_by_name(device)?;
        Ok(Port { id, name: device.to_owned(), vdev: None, started: false, checksum_offload: false })
    }

    /// Creates a virtual device at run time (`rte_vdev_init`) and opens its port; the device is
    /// removed again when the port is dropped.
    pub fn create_vdev(name: &str, args: &str) -> Result<Port, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::other("rte_vdev_init", "name contains NUL"))?;
        let cargs = CString::new(args).map_err(|_| DpdkError::other("rte_vdev_init", "args contain NUL"))?;
        // SAFETY: `cname` and `cargs` are NUL-terminated strings alive for the call (the bus copies
        // what it keeps); failures come back as a negative return.
        let ret = unsafe { dpdk_sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) };
        check(ret, || format!("rte_vdev_init({name}, {args})"))?;
        match port_by_name(name) {
            Ok(id) => {
                Ok(Port { id, name: name.to_owned(), vdev: Some(cname), started: false, checksum_offload: false })
            }
            Err(e) => {
                // SAFETY: `cname` is a NUL-terminated string alive for the call, naming the device
                // created just above, which no `Port` refers to (none was made).
                unsafe { dpdk_sys::rte_vdev_uninit(cname.as_ptr()) };
                Err(e)
            }
        }
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `queues` rx and tx queue pairs, every rx queue filling from `pool`. With more than one
    /// queue, RSS over IPv4 addresses and ports spreads flows where the device supports it.
    pub fn configure(&mut self, queues: u16, pool: &Mempool) -> Result<(), DpdkError> {
        let info = self.info()?;
        if queues > info.max_rx_queues || queues > info.max_tx_queues {
            return Err(DpdkError::other(
                format!("configure {}", self.name),
                format!(
                    "{queues} queue pairs needed (one per worker), the device offers {} rx / {} tx",
                    info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        let rss =
            (RSS_IPV4 | RSS_FRAG_IPV4 | RSS_NONFRAG_IPV4_TCP | RSS_NONFRAG_IPV4_UDP) & info.flow_type_rss_offloads;
        if queues > 1 && rss != 0 {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss;
        }
        // IPv4, UDP and TCP checksums by the NIC when it does all three both ways; otherwise the
        // data path checks and updates them in software (incrementally: cheap).
        self.checksum_offload = info.tx_offload_capa & OFFLOAD_CKSUM == OFFLOAD_CKSUM
            && info.rx_offload_capa & OFFLOAD_CKSUM == OFFLOAD_CKSUM;
        if self.checksum_offload {
            conf.txmode.offloads |= OFFLOAD_CKSUM;
            conf.rxmode.offloads |= OFFLOAD_CKSUM;
        }
        // SAFETY: ethdev control calls check `port_id` themselves (-ENODEV if invalid); `conf` is
        // a valid, initialised `rte_eth_conf` alive for the call, which DPDK copies. `&mut self`
        // keeps other calls on this `Port` from running meanwhile.
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(self.id, queues, queues, &conf) };
        check(ret, || format!("rte_eth_dev_configure({})", self.name))?;

        let (mut rx_desc, mut tx_desc) = (RING_SIZE, RING_SIZE);
        // SAFETY: the port id is checked by DPDK; `rx_desc` and `tx_desc` are valid, exclusive
        // places for the u16 answers.
        let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rx_desc, &mut tx_desc) };
        check(ret, || format!("rte_eth_dev_adjust_nb_rx_tx_desc({})", self.name))?;
        // SAFETY: takes only the port id, which it checks (returning -1 for an invalid one).
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(self.id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..queues {
            // SAFETY: the port id and queue index are checked by DPDK (`q < queues`, configured
            // above); a null rx_conf asks for the driver's defaults. `pool` is a live mempool that
            // the queue keeps drawing from after the call: it must outlive the port's queues, an
            // order the owner keeps (see `Mempool`'s Drop) and this borrow does not enforce.
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(self.id, q, rx_desc, socket, std::ptr::null(), pool.as_ptr())
            };
            check(ret, || format!("rte_eth_rx_queue_setup({} queue {q})", self.name))?;
            // SAFETY: the port id and queue index are checked by DPDK; a null tx_conf asks for the
            // driver's defaults.
            let ret = unsafe { dpdk_sys::rte_eth_tx_queue_setup(self.id, q, tx_desc, socket, std::ptr::null()) };
            check(ret, || format!("rte_eth_tx_queue_setup({} queue {q})", self.name))?;
        }
        Ok(())
    }

    /// True once `configure` enabled IPv4/UDP/TCP checksum offload in both directions.
    pub fn checksum_offload(&self) -> bool {
        self.checksum_offload
    }

    /// The port's MTU (the largest IP packet it sends); 1500 if the PMD does not say.
    pub fn mtu(&self) -> u16 {
        let mut mtu = 0u16;
        // SAFETY: DPDK checks the port id (-ENODEV otherwise); `mtu` is a valid, exclusive place
        // for the answer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_mtu(self.id, &mut mtu) };
        if ret == 0 && mtu >= 576 {
            mtu
        } else {
            1500
        }
    }

    pub fn start(&mut self) -> Result<(), DpdkError> {
        // SAFETY: takes only the port id, which DPDK checks; `&mut self` keeps other calls on this
        // `Port` from running meanwhile.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.id) };
        check(ret, || format!("rte_eth_dev_start({})", self.name))?;
        self.started = true;
        Ok(())
    }

    pub fn stop(&mut self) -> Result<(), DpdkError> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        // SAFETY: takes only the port id, which DPDK checks; `&mut self` keeps other calls on this
        // `Port` from running meanwhile. Workers must not poll the port during and after this,
        // which the owner ensures by joining them first.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
        check(ret, || format!("rte_eth_dev_stop({})", self.name)).map(drop)
    }

    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: DPDK checks the port id; `addr` is a valid, exclusive place for the answer.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut addr) };
        check(ret, || format!("rte_eth_macaddr_get({})", self.name))?;
        Ok(addr.addr_bytes)
    }

    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: DPDK checks the port id; `link` is a valid, exclusive place for the answer.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut link) };
        check(ret, || format!("rte_eth_link_get_nowait({})", self.name))?;
        Ok(LinkStatus { up: link.link_status() != 0, speed_mbps: link.link_speed })
    }

    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: DPDK checks the port id; `s` is a valid, exclusive place for the answer. The
        // PMD reads counters that workers update meanwhile, which ethdev allows by design.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        check(ret, || format!("rte_eth_stats_get({})", self.name))?;
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The RSS key and redirection table in force, if the port does RSS with a readable
    /// Toeplitz configuration (after `configure`).
    pub fn rss(&self) -> Option<RssConfig> {
        let info = self.info().ok()?;
        if info.flow_type_rss_offloads == 0 || info.reta_size == 0 || info.hash_key_size == 0 {
            return None;
        }
        let mut key = vec![0u8; info.hash_key_size as usize];
        let mut conf =
            dpdk_sys::rte_eth_rss_conf { rss_key: key.as_mut_ptr(), rss_key_len: info.hash_key_size, rss_hf: 0 };
        // SAFETY: DPDK checks the port id; `conf` is valid for the call and its `rss_key` points at
        // `key`: `rss_key_len` = hash_key_size bytes, the size of the device's key, so the driver's
        // copy of the key fits. `key` is not otherwise used until the call returns.
        if unsafe { dpdk_sys::rte_eth_dev_rss_hash_conf_get(self.id, &mut conf) } != 0 || conf.rss_hf == 0 {
            return None;
        }
        let groups = (info.reta_size as usize).div_ceil(64);
        let mut entries = vec![dpdk_sys::rte_eth_rss_reta_entry64 { mask: u64::MAX, reta: [0; 64] }; groups];
        // SAFETY: DPDK checks the port id; `entries` holds ceil(reta_size / 64) groups of 64
        // entries, all that ethdev and the driver read or write for `reta_size` (the device's own
        // size, from `info`), and it is exclusively ours for the call.
        if unsafe { dpdk_sys::rte_eth_dev_rss_reta_query(self.id, entries.as_mut_ptr(), info.reta_size) } != 0 {
            return None;
        }
        let reta = entries.iter().flat_map(|e| e.reta.iter().copied()).take(info.reta_size as usize).collect();
        Some(RssConfig { key, reta })
    }

    /// The driver's name, e.g. `net_af_packet`.
    pub fn driver(&self) -> Result<String, DpdkError> {
        let info = self.info()?;
        if info.driver_name.is_null() {
            return Ok(String::new());
        }
        // SAFETY: non-null (checked above), `driver_name` is the PMD's own NUL-terminated name,
        // static for as long as the driver is loaded (the whole process); copied out at once.
        Ok(unsafe { std::ffi::CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned())
    }

    fn info(&self) -> Result<dpdk_sys::rte_eth_dev_info, DpdkError> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: DPDK checks the port id; `info` is a valid, exclusive place for the answer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(self.id, &mut info) };
        check(ret, || format!("rte_eth_dev_info_get({})", self.name))?;
        Ok(info)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("sluice: warning: {e}");
        }
        // SAFETY: DPDK checks the port id (a port closed twice gives -ENODEV, not harm). Dropping
        // needs `&mut self`, and the owner drops flow rules and joins the workers that poll the
        // port before dropping it.
        unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
        if let Some(vdev) = &self.vdev {
            // SAFETY: `vdev` is a NUL-terminated string alive for the call, naming the device this
            // `Port` created; its port was just closed.
            unsafe { dpdk_sys::rte_vdev_uninit(vdev.as_ptr()) };
        }
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Port({} #{})", self.name, self.id)
    }
}

fn port_by_name(name: &str) -> Result<u16, DpdkError> {
    let cname = CString::new(name).map_err(|_| DpdkError::other("port", "name contains NUL"))?;
    let mut id = 0u16;
    // SAFETY: `cname` is a NUL-terminated string and `id` a valid, exclusive place for the
    // answer, both alive for the call.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    if ret < 0 {
        return Err(DpdkError::other(
            format!("find port {name}"),
            "no such DPDK device: is it in [dpdk] args (e.g. --vdev=...) or bound to a DPDK driver?",
        ));
    }
    Ok(id)
}
