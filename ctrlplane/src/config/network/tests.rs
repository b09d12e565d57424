use std::net::Ipv4Addr;

use crate::config::test_support::{config, errors, HOST};
use crate::config::{parse, Ipv4Net};

#[test]
fn interfaces_and_routes_resolve() {
    let config = config(
        r#"
[[interface]]
name = "wan"
device = "0000:03:00.0"
addresses = ["198.18.0.1/24", "198.18.2.1/30"]
[[interface]]
name = "lan"
device = "net1"

[[route]]
prefix = "0.0.0.0/0"
via = "198.18.0.254"
[[route]]
prefix = "198.19.0.0/16"
via = "198.18.2.2"
"#,
    );
    let wan = &config.interfaces[0];
    assert_eq!((wan.name.as_str(), wan.device.as_str()), ("wan", "0000:03:00.0"));
    assert_eq!(wan.addresses[1], Ipv4Net { addr: Ipv4Addr::new(198, 18, 2, 1), prefix_len: 30 });
    assert!(config.interfaces[1].addresses.is_empty());
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.routes[1].prefix.to_string(), "198.19.0.0/16");
    assert_eq!(config.routes[1].via, Ipv4Addr::new(198, 18, 2, 2));
}

#[test]
fn at_least_one_interface() {
    let refused = parse("", "t.toml", &HOST).err().map(|d| d.to_string());
    assert_eq!(refused.as_deref(), Some("t.toml:1:1: no [[interface]] defined: at least one is needed"));
}

#[test]
fn missing_keys_point_at_the_header() {
    assert_eq!(errors("[[interface]]\ndevice = \"net0\"\n"), "t.toml:1:1: missing key `name` in [[interface]]");
    assert_eq!(errors("\n[[interface]]\nname = \"wan\"\n"), "t.toml:2:1: missing key `device` in [[interface]]");
}

#[test]
fn interface_names_are_linux_names() {
    assert_eq!(errors("[[interface]]\nname = \"\"\ndevice = \"net0\"\n"), "t.toml:2:8: interface name is empty");
    for bad in ["sixteen-chars-xx", "a/b", "a:b", "a b", "tab\\t", ".", ".."] {
        let text = format!("[[interface]]\nname = \"{bad}\"\ndevice = \"net0\"\n");
        let shown = format!("{:?}", bad.replace("\\t", "\t"));
        assert_eq!(
            errors(&text),
            format!(
                "t.toml:2:8: invalid interface name {shown}: a Linux interface name has at most 15 bytes, no '/', ':' or whitespace, and is not \".\" or \"..\""
            )
        );
    }
    assert_eq!(config("[[interface]]\nname = \"fifteen-chars-x\"\ndevice = \"n\"\n").interfaces[0].name.len(), 15);
}

#[test]
fn names_and_devices_are_unique() {
    let text = "[[interface]]\nname = \"wan\"\ndevice = \"net0\"\n[[interface]]\nname = \"wan\"\ndevice = \"net0\"\n";
    let expected = [
        r#"t.toml:5:8: duplicate interface name "wan" (first at line 2, column 8)"#,
        r#"t.toml:6:10: duplicate interface device "net0" (first at line 3, column 10)"#,
    ];
    assert_eq!(errors(text), expected.join("\n"));
}

#[test]
fn devices_are_not_empty() {
    assert_eq!(
        errors("[[interface]]\nname = \"wan\"\ndevice = \"\"\n"),
        "t.toml:3:10: interface device is empty: expected a DPDK device name, a PCI address or af_xdp:IFNAME"
    );
}

#[test]
fn af_xdp_devices_name_another_kernel_interface() {
    let lan = &config("[[interface]]\nname = \"lan\"\ndevice = \"af_xdp:eth1\"\n").interfaces[0];
    assert_eq!((lan.af_xdp(), lan.dpdk_device().as_str()), (Some("eth1"), "net_af_xdp_lan"));
    for bad in ["af_xdp:", "af_xdp:sixteen-chars-xx", "af_xdp:a,b", "af_xdp:a b"] {
        let text = format!("[[interface]]\nname = \"lan\"\ndevice = \"{bad}\"\n");
        assert_eq!(
            errors(&text),
            format!("t.toml:3:10: invalid af_xdp device {bad:?}: expected af_xdp:IFNAME, a Linux interface name of at most 15 bytes")
        );
    }
    assert_eq!(
        errors("[[interface]]\nname = \"eth1\"\ndevice = \"af_xdp:eth1\"\n"),
        "t.toml:3:10: af_xdp device \"af_xdp:eth1\" has the interface's own name: that name is Sluice's kernel interface for this link; name it otherwise"
    );
}

#[test]
fn addresses_have_a_prefix_length() {
    let text = "[[interface]]\nname = \"wan\"\ndevice = \"net0\"\naddresses = [\"198.18.0.1\", \"198.18.0.2/33\"]\n";
    let expected = [
        r#"t.toml:4:14: invalid interface address "198.18.0.1": expected a.b.c.d/len with len 0..=32"#,
        r#"t.toml:4:28: invalid interface address "198.18.0.2/33": expected a.b.c.d/len with len 0..=32"#,
    ];
    assert_eq!(errors(text), expected.join("\n"));
}

#[test]
fn an_address_belongs_to_one_interface() {
    let text = "[[interface]]\nname = \"a\"\ndevice = \"net0\"\naddresses = [\"198.18.0.1/24\"]\n\
                [[interface]]\nname = \"b\"\ndevice = \"net1\"\naddresses = [\"198.18.0.1/16\"]\n";
    assert_eq!(errors(text), "t.toml:8:14: duplicate interface address 198.18.0.1 (first at line 4, column 14)");
}

#[test]
fn routes_need_prefix_and_via() {
    assert_eq!(
        errors("[[route]]\n"),
        "t.toml:1:1: missing key `prefix` in [[route]]\nt.toml:1:1: missing key `via` in [[route]]"
    );
}

#[test]
fn route_prefixes_are_networks() {
    assert_eq!(
        errors("[[route]]\nprefix = \"198.18.0.1/24\"\nvia = \"198.18.0.254\"\n"),
        "t.toml:2:10: route prefix 198.18.0.1/24 has host bits set: the network is 198.18.0.0/24"
    );
    assert_eq!(
        errors("[[route]]\nprefix = \"default\"\nvia = \"198.18.0.254\"\n"),
        r#"t.toml:2:10: invalid route prefix "default": expected a.b.c.d/len with len 0..=32"#
    );
}

#[test]
fn route_prefixes_are_unique() {
    let text = "[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"198.18.0.254\"\n\
                [[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"198.18.1.254\"\n";
    assert_eq!(errors(text), "t.toml:5:10: duplicate route prefix 0.0.0.0/0 (first at line 2, column 10)");
}

#[test]
fn gateways_are_on_a_connected_network() {
    let route = |via: &str| format!("[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"{via}\"\n");
    assert_eq!(
        errors(&route("10.0.0.1")),
        "t.toml:3:7: route via 10.0.0.1 is not on a connected network: no interface address covers it"
    );
    assert_eq!(errors(&route("198.18.0.1")), "t.toml:3:7: route via 198.18.0.1 is the address of interface wan itself");
    assert_eq!(errors(&route("gw")), r#"t.toml:3:7: invalid route via "gw": expected an IPv4 address a.b.c.d"#);
}
