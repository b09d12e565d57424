//! The hashes that every node and every worker must compute alike: of a new flow (maglev), of
//! a client's address (sh) and of a backend's identity (the maglev table's permutations).
//!
//! Stable by design: no random seed, no dependence on the process, the build or the platform.
//! Behind ECMP, a flow's packets may reach any node of the cluster, and after a node fails its
//! flows land on the others; each node must send a flow to the same backend without talking to
//! the others, so the hash of a flow and the table are the same everywhere. Changing any
//! function or constant here moves flows between backends during a rolling upgrade: the tests
//! pin their values so that such a change cannot go unnoticed.
//!
//! Every input is packed into one `u64` (the fields do not overlap) with a constant per use
//! ("domain"), then mixed by `mix`, the splitmix64 finaliser: a bijection of `u64` with full
//! avalanche, so that distinct flows never share a hash and a one-bit change in the client
//! port changes half the bits of the hash. A few multiplications: cheap on the packet path.

pub(super) use crate::mix::mix;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Domains, so that the same bits hashed for different uses do not give related hashes.
const FLOW: u64 = u64::from_be_bytes(*b"sl.flow\0");
const CLIENT: u64 = u64::from_be_bytes(*b"sl.clnt\0");
const BACKEND: u64 = u64::from_be_bytes(*b"sl.bknd\0");
const INDEX: u64 = u64::from_be_bytes(*b"sl.indx\0");
/// The two hashes of a backend key behind its maglev permutation.
pub(super) const OFFSET: u64 = u64::from_be_bytes(*b"sl.offs\0");
pub(super) const SKIP: u64 = u64::from_be_bytes(*b"sl.skip\0");

/// A hash of a new flow for maglev: of its protocol, client address and client port (not of
/// the VIP: all flows of a service share it). The same on every node, for ever.
#[inline]
pub fn flow_hash(proto: u8, client: Ipv4Addr, client_port: u16) -> u64 {
    let packed = u64::from(u32::from(client)) | u64::from(client_port) << 32 | u64::from(proto) << 48;
    mix(packed ^ FLOW)
}

/// A stable identity of a backend for maglev: a hash of its address and port. Keys, not
/// indexes, place a backend in the table, so a backend keeps its entries when others are added
/// or removed before it in the configuration.
pub fn backend_key(address: SocketAddrV4) -> u64 {
    let packed = u64::from(u32::from(*address.ip())) | u64::from(address.port()) << 32;
    mix(packed ^ BACKEND)
}

/// A hash of the client's address alone, for sh.
#[inline]
pub(super) fn client_hash(client: Ipv4Addr) -> u64 {
    mix(u64::from(u32::from(client)) ^ CLIENT)
}

/// The key of backend `index` for schedulers built without keys: stable for as long as the
/// list of backends keeps its order.
pub(super) fn index_key(index: usize) -> u64 {
    mix(index as u64 ^ INDEX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 50);

    /// Pinned values: a change here moves flows between backends across a cluster that runs
    /// two versions. Change them only knowingly, and say so in the release notes.
    #[test]
    fn hashes_are_the_same_everywhere_and_for_ever() {
        assert_eq!(mix(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(flow_hash(6, CLIENT_IP, 40000), FLOW_6_CLIENT_40000);
        assert_eq!(flow_hash(17, CLIENT_IP, 40000), FLOW_17_CLIENT_40000);
        assert_eq!(backend_key(SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 8080)), BACKEND_1_2_8080);
        assert_eq!(client_hash(CLIENT_IP), CLIENT_HASH);
        assert_eq!(index_key(0), INDEX_0);
    }
    const FLOW_6_CLIENT_40000: u64 = 0x2436_c75a_5aa3_7f53;
    const FLOW_17_CLIENT_40000: u64 = 0x2a18_f1c8_b9ad_1901;
    const BACKEND_1_2_8080: u64 = 0xd34e_98ad_8038_5b6b;
    const CLIENT_HASH: u64 = 0xc339_e2cd_08c2_18b1;
    const INDEX_0: u64 = 0xc171_fe4b_5022_26b6;

    #[test]
    fn distinct_flows_have_distinct_hashes() {
        let mut seen = HashSet::new();
        for proto in [6, 17] {
            for host in 0..64u8 {
                for port in (1024..=65535u16).step_by(97) {
                    let client = Ipv4Addr::new(10, 0, 0, host);
                    assert!(seen.insert(flow_hash(proto, client, port)), "{proto} {client}:{port}");
                }
            }
        }
    }

    /// Flipping any one input bit flips about half of the output bits, each output bit about
    /// half of the time: what spreads nearby ports and addresses over the whole table.
    #[test]
    fn one_bit_of_input_changes_half_of_the_hash() {
        let mut flips_per_output_bit = [0u32; 64];
        let mut samples = 0;
        for i in 0..200u32 {
            let client = Ipv4Addr::from(0x0a00_0000 | i.wrapping_mul(2_654_435_761) >> 8);
            let port = (i * 331) as u16;
            let base = flow_hash(6, client, port);
            for bit in 0..32 {
                let flipped = Ipv4Addr::from(u32::from(client) ^ 1 << bit);
                record(&mut flips_per_output_bit, base ^ flow_hash(6, flipped, port));
            }
            for bit in 0..16 {
                record(&mut flips_per_output_bit, base ^ flow_hash(6, client, port ^ 1 << bit));
            }
            samples += 48;
        }
        for (bit, &flips) in flips_per_output_bit.iter().enumerate() {
            let share = f64::from(flips) / f64::from(samples);
            assert!((0.45..=0.55).contains(&share), "output bit {bit} flips {share:.3} of the time");
        }
    }

    fn record(flips: &mut [u32; 64], diff: u64) {
        for (bit, count) in flips.iter_mut().enumerate() {
            *count += (diff >> bit & 1) as u32;
        }
    }
}
