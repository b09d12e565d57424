//! Generates bindings for the DPDK that `pkg-config libdpdk` finds, wraps its static inline
//! functions (rx/tx burst, mbuf alloc, lcore id, rings) into a C file compiled with DPDK's own
//! flags, and links the shared DPDK libraries. PMDs are loaded by the EAL from its plugin
//! directory at run time, so only libraries whose symbols we call are linked.

use std::env;
use std::path::PathBuf;

fn main() {
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
        .expect("DPDK >= 22.11 not found by pkg-config: run scripts/setup (installs libdpdk-dev)");

    let cflags = pkg_config_output(&["--cflags", "libdpdk"]);
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let wrapped = out.join("static_fns");

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .allowlist_function("rte_.*|sluice_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrapped)
        // Packed structs that hold an aligned member: bindgen cannot lay them out in Rust.
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .no_debug("rte_flow_item_gtp_psc")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder.generate().expect("bindgen failed on DPDK headers");
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");

    // The wrappers include the headers by path relative to this crate.
    let mut cc = cc::Build::new();
    cc.file(wrapped.with_extension("c"))
        .file("shim.c")
        .include(env::var("CARGO_MANIFEST_DIR").expect("manifest dir"))
        .warnings(false)
        .opt_level(3);
    for flag in &cflags {
        cc.flag(flag);
    }
    cc.compile("sluice_dpdk_wrap");

    for dir in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for lib in &dpdk.libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    // Not in `pkg-config --libs` for a shared build, but we call rte_vdev_init directly.
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
}

/// pkg-config's flags verbatim, split the way a shell would for these simple tokens. The
/// `-include rte_config.h` pair must stay together, so this is not the `pkg_config` crate's
/// parsed view.
fn pkg_config_output(args: &[&str]) -> Vec<String> {
    let output = std::process::Command::new("pkg-config").args(args).output().expect("run pkg-config");
    assert!(output.status.success(), "pkg-config {args:?} failed");
    String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_owned).collect()
}
