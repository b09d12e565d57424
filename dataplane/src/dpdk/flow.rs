//! rte_flow rules for "flow" steering: IPv4 destination = a local IP -> the rx queue of the
//! worker that owns it (`steer::flow::FlowRule`).
//!
//! Owns: the rte_flow structures of a rule (`FlowSpec`) and the rules installed on a port
//! (`FlowHandle`, destroyed on drop). Called on the control core at start-up or reconfiguration,
//! never on the packet path; rte_flow calls on one port must not run on two threads at once.
//!
//! A rule, as DPDK sees it: attributes ingress, group 0, priority 0; pattern ETH (any, no spec)
//! / IPV4 (spec dst = the local IP, mask dst = 255.255.255.255, every other field masked out) /
//! END; actions QUEUE (index = the queue) / END. Addresses in `rte_ipv4_hdr` are big-endian
//! (`rte_be32_t`): the spec holds the address's octets in memory order.
//!
//! The pattern and action arrays point at the spec, mask and queue structures: all of them sit
//! in one heap allocation that never moves while a `FlowSpec` lives, and a call borrows the
//! `FlowSpec` for its whole duration. (DPDK copies what it needs into the rule: the structures
//! need not outlive the call.)
//!
//! Drop order: destroy (drop) a port's `FlowHandle`s before the port is closed; destroying a
//! rule of a closed port fails harmlessly (the port id is no longer valid) and is reported.

use std::ffi::CStr;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

use dpdk_sys as sys;

use super::DpdkError;
use crate::steer::flow::FlowRule;

/// A rule's rte_flow attributes, pattern and actions, ready to pass to rte_flow_*.
struct FlowSpec {
    parts: Box<Parts>,
}

/// The structures of a rule; `pattern` and `actions` point into the same allocation.
struct Parts {
    attr: sys::rte_flow_attr,
    ipv4_spec: sys::rte_flow_item_ipv4,
    ipv4_mask: sys::rte_flow_item_ipv4,
    queue: sys::rte_flow_action_queue,
    pattern: [sys::rte_flow_item; 3],
    actions: [sys::rte_flow_action; 2],
}

impl FlowSpec {
    fn new(rule: &FlowRule) -> FlowSpec {
        let mut attr = sys::rte_flow_attr { group: 0, priority: 0, ..Default::default() };
        attr.set_ingress(1);
        let mut ipv4_spec = sys::rte_flow_item_ipv4::default();
        ipv4_spec.hdr.dst_addr = u32::from_ne_bytes(rule.local_ip.octets());
        let mut ipv4_mask = sys::rte_flow_item_ipv4::default();
        ipv4_mask.hdr.dst_addr = u32::MAX;
        let mut parts = Box::new(Parts {
            attr,
            ipv4_spec,
            ipv4_mask,
            queue: sys::rte_flow_action_queue { index: rule.queue },
            pattern: [item(sys::RTE_FLOW_ITEM_TYPE_END); 3],
            actions: [sys::rte_flow_action { type_: sys::RTE_FLOW_ACTION_TYPE_END, conf: ptr::null() }; 2],
        });
        // The box's contents never move again: these pointers stay valid while `parts` lives.
        let spec: *const sys::rte_flow_item_ipv4 = &parts.ipv4_spec;
        let mask: *const sys::rte_flow_item_ipv4 = &parts.ipv4_mask;
        let queue: *const sys::rte_flow_action_queue = &parts.queue;
        parts.pattern = [
            item(sys::RTE_FLOW_ITEM_TYPE_ETH),
            sys::rte_flow_item { spec: spec.cast(), mask: mask.cast(), ..item(sys::RTE_FLOW_ITEM_TYPE_IPV4) },
            item(sys::RTE_FLOW_ITEM_TYPE_END),
        ];
        parts.actions = [
            sys::rte_flow_action { type_: sys::RTE_FLOW_ACTION_TYPE_QUEUE, conf: queue.cast() },
            sys::rte_flow_action { type_: sys::RTE_FLOW_ACTION_TYPE_END, conf: ptr::null() },
        ];
        FlowSpec { parts }
    }

    /// Calls `f` with the attribute, pattern and action pointers, valid for the whole call.
    fn with_pointers<R>(
        &self,
        f: impl FnOnce(*const sys::rte_flow_attr, *const sys::rte_flow_item, *const sys::rte_flow_action) -> R,
    ) -> R {
        f(&self.parts.attr, self.parts.pattern.as_ptr(), self.parts.actions.as_ptr())
    }
}

/// An item of type `type_` with no spec, last or mask: matches any such header.
fn item(type_: sys::rte_flow_item_type) -> sys::rte_flow_item {
    sys::rte_flow_item { type_, spec: ptr::null(), last: ptr::null(), mask: ptr::null() }
}

/// Asks the port's driver whether it would accept `rule` (rte_flow_validate); installs nothing.
pub fn validate(port: u16, rule: &FlowRule) -> Result<(), DpdkError> {
    let spec = FlowSpec::new(rule);
    let mut error = sys::rte_flow_error::default();
    // SAFETY: the pointers come from `spec`, whose boxed parts (and the spec, mask and queue
    // structures the pattern and actions point at) stay alive and unmoved for the call, and DPDK
    // copies what it keeps; `error` is a valid, exclusive out pointer. rte_flow serialises calls
    // on a port whose driver is not thread-safe for them (its per-port flow mutex).
    let ret = spec.with_pointers(|attr, pattern, actions| unsafe {
        sys::rte_flow_validate(port, attr, pattern, actions, &mut error)
    });
    if ret == 0 {
        Ok(())
    } else {
        Err(flow_error(format!("rte_flow_validate(port {port}, {rule})"), ret.saturating_abs(), &error))
    }
}

/// Installs `rule` on `port` (rte_flow_create). The rule is removed when the handle drops.
pub fn create(port: u16, rule: &FlowRule) -> Result<FlowHandle, DpdkError> {
    let spec = FlowSpec::new(rule);
    let mut error = sys::rte_flow_error::default();
    // SAFETY: as in `validate`.
    let flow = spec.with_pointers(|attr, pattern, actions| unsafe {
        sys::rte_flow_create(port, attr, pattern, actions, &mut error)
    });
    match NonNull::new(flow) {
        Some(flow) => Ok(FlowHandle { port, rule: *rule, flow }),
        None => {
            // SAFETY: sluice_rte_errno takes no arguments and only reads the calling thread's
            // `rte_errno`, set by the failed call just above.
            let errno = unsafe { sys::sluice_rte_errno() };
            Err(flow_error(format!("rte_flow_create(port {port}, {rule})"), errno, &error))
        }
    }
}

/// Validates every rule, then installs them all; on any failure nothing stays installed (the
/// rules created so far are destroyed as their handles drop).
pub fn install(port: u16, rules: &[FlowRule]) -> Result<Vec<FlowHandle>, DpdkError> {
    for rule in rules {
        validate(port, rule)?;
    }
    rules.iter().map(|rule| create(port, rule)).collect()
}

/// A rule installed on a port; destroyed (rte_flow_destroy) on drop.
pub struct FlowHandle {
    port: u16,
    rule: FlowRule,
    flow: NonNull<sys::rte_flow>,
}

// SAFETY: the handle is an opaque token of the port's driver; it may be used from any thread,
// one at a time (`&mut self` / `self` for destroy).
unsafe impl Send for FlowHandle {}

impl FlowHandle {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn rule(&self) -> FlowRule {
        self.rule
    }

    /// Removes the rule now, reporting a failure (dropping the handle only logs it).
    pub fn destroy(self) -> Result<(), DpdkError> {
        let this = ManuallyDrop::new(self);
        this.destroy_rule()
    }

    fn destroy_rule(&self) -> Result<(), DpdkError> {
        let mut error = sys::rte_flow_error::default();
        // SAFETY: `flow` came from rte_flow_create on `port` and is destroyed only here, once
        // (`destroy` skips the drop).
        let ret = unsafe { sys::rte_flow_destroy(self.port, self.flow.as_ptr(), &mut error) };
        if ret == 0 {
            Ok(())
        } else {
            Err(flow_error(
                format!("rte_flow_destroy(port {}, {})", self.port, self.rule),
                ret.saturating_abs(),
                &error,
            ))
        }
    }
}

impl Drop for FlowHandle {
    fn drop(&mut self) {
        if let Err(e) = self.destroy_rule() {
            eprintln!("sluice: warning: {e}");
        }
    }
}

impl fmt::Debug for FlowHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlowHandle(port {}: {})", self.port, self.rule)
    }
}

/// A failed rte_flow call: DPDK's text for `errno`, and the driver's own message if it gave one.
fn flow_error(operation: String, errno: i32, error: &sys::rte_flow_error) -> DpdkError {
    let mut e = DpdkError::from_errno(operation, errno);
    if !error.message.is_null() {
        // SAFETY: rte_flow_error.message is a NUL-terminated string the driver keeps alive
        // (a literal, in practice); copied right away.
        let detail = unsafe { CStr::from_ptr(error.message) }.to_string_lossy();
        if detail != e.message {
            e.message = format!("{} ({detail})", e.message);
        }
    }
    e
}

#[cfg(test)]
mod tests {
    //! The rule's structures, as values; no call into DPDK (that needs an EAL and a port).

    use std::net::Ipv4Addr;

    use super::*;

    fn rule() -> FlowRule {
        FlowRule { local_ip: Ipv4Addr::new(198, 18, 1, 100), queue: 3 }
    }

    #[test]
    fn attributes_ingress_group_0_priority_0() {
        let spec = FlowSpec::new(&rule());
        let attr = &spec.parts.attr;
        assert_eq!((attr.ingress(), attr.egress(), attr.transfer(), attr.group, attr.priority), (1, 0, 0, 0, 0));
    }

    #[test]
    fn pattern_eth_ipv4_end() {
        let spec = FlowSpec::new(&rule());
        let pattern = &spec.parts.pattern;
        let types: Vec<u32> = pattern.iter().map(|i| i.type_).collect();
        assert_eq!(types, [sys::RTE_FLOW_ITEM_TYPE_ETH, sys::RTE_FLOW_ITEM_TYPE_IPV4, sys::RTE_FLOW_ITEM_TYPE_END]);
        assert!(pattern.iter().all(|i| i.last.is_null()));
        assert!(pattern[0].spec.is_null() && pattern[0].mask.is_null(), "any ethernet");
        assert!(pattern[2].spec.is_null() && pattern[2].mask.is_null());
        assert_eq!(pattern[1].spec, (&spec.parts.ipv4_spec as *const sys::rte_flow_item_ipv4).cast());
        assert_eq!(pattern[1].mask, (&spec.parts.ipv4_mask as *const sys::rte_flow_item_ipv4).cast());
    }

    #[test]
    fn ipv4_spec_and_mask_in_network_order() {
        let spec = FlowSpec::new(&rule());
        // Read through the pattern's own pointers, as the driver would.
        // SAFETY: `FlowSpec::new` pointed the IPv4 item's spec and mask at `parts.ipv4_spec` and
        // `parts.ipv4_mask`, initialised `rte_flow_item_ipv4`s in the box that `spec` keeps alive
        // and unmoved (and unmodified) for as long as these borrows.
        let (ipv4_spec, ipv4_mask) = unsafe {
            (
                &*spec.parts.pattern[1].spec.cast::<sys::rte_flow_item_ipv4>(),
                &*spec.parts.pattern[1].mask.cast::<sys::rte_flow_item_ipv4>(),
            )
        };
        assert_eq!(ipv4_spec.hdr.dst_addr.to_ne_bytes(), [198, 18, 1, 100]);
        assert_eq!(u32::from_be(ipv4_spec.hdr.dst_addr), 0xc612_0164);
        assert_eq!(ipv4_mask.hdr.dst_addr.to_ne_bytes(), [255; 4]);
        let masked_out = |h: &sys::rte_ipv4_hdr| {
            (
                h.src_addr,
                h.total_length,
                h.packet_id,
                h.fragment_offset,
                h.time_to_live,
                h.next_proto_id,
                h.hdr_checksum,
                h.type_of_service,
            )
        };
        assert_eq!(masked_out(&ipv4_mask.hdr), (0, 0, 0, 0, 0, 0, 0, 0), "only dst matched");
        assert_eq!(masked_out(&ipv4_spec.hdr), (0, 0, 0, 0, 0, 0, 0, 0));
        // The first byte (version and header length) is masked out as well.
        // SAFETY: reads the first byte of a live, initialised `rte_ipv4_hdr` (its version/IHL
        // byte); a u8 read needs no alignment and every byte value is valid.
        let first_byte = unsafe { *(&ipv4_mask.hdr as *const sys::rte_ipv4_hdr).cast::<u8>() };
        assert_eq!(first_byte, 0);
    }

    #[test]
    fn actions_queue_end() {
        let spec = FlowSpec::new(&FlowRule { queue: 7, ..rule() });
        let actions = &spec.parts.actions;
        assert_eq!(
            (actions[0].type_, actions[1].type_),
            (sys::RTE_FLOW_ACTION_TYPE_QUEUE, sys::RTE_FLOW_ACTION_TYPE_END)
        );
        assert!(actions[1].conf.is_null());
        // SAFETY: `FlowSpec::new` pointed the QUEUE action's conf at `parts.queue`, an initialised
        // `rte_flow_action_queue` in the box that `spec` keeps alive and unmoved for this borrow.
        let queue = unsafe { &*actions[0].conf.cast::<sys::rte_flow_action_queue>() };
        assert_eq!(queue.index, 7);
    }

    #[test]
    fn pointers_survive_moving_the_spec() {
        let spec = FlowSpec::new(&rule());
        let specs = [spec]; // moves the FlowSpec, not its parts
        let moved = &specs[0];
        assert_eq!(moved.parts.pattern[1].spec, (&moved.parts.ipv4_spec as *const sys::rte_flow_item_ipv4).cast());
        assert_eq!(moved.parts.actions[0].conf, (&moved.parts.queue as *const sys::rte_flow_action_queue).cast());
        moved.with_pointers(|attr, pattern, actions| {
            assert_eq!(attr, &moved.parts.attr as *const _);
            assert_eq!(pattern, moved.parts.pattern.as_ptr());
            assert_eq!(actions, moved.parts.actions.as_ptr());
        });
    }

    #[test]
    fn errors_carry_the_driver_message() {
        let message = c"port does not support QUEUE";
        let error = sys::rte_flow_error { message: message.as_ptr(), ..Default::default() };
        let e = flow_error("rte_flow_validate(port 0, ipv4 dst 198.18.1.100/32 -> queue 1)".into(), 38, &error);
        assert_eq!(e.errno, 38);
        assert!(e.to_string().starts_with("rte_flow_validate(port 0, ipv4 dst 198.18.1.100/32 -> queue 1): "), "{e}");
        assert!(e.message.ends_with("(port does not support QUEUE)"), "{e}");
        let plain = flow_error("op".into(), 22, &sys::rte_flow_error::default());
        assert!(!plain.message.contains('('), "{plain}");
    }
}
