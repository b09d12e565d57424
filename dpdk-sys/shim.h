/* Macros and thread-locals that bindgen cannot wrap. Keep this file tiny. */
#ifndef SLUICE_DPDK_SHIM_H
#define SLUICE_DPDK_SHIM_H

/* The calling thread's rte_errno (a per-lcore thread-local in DPDK). */
int sluice_rte_errno(void);

#endif
