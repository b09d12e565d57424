#include <rte_errno.h>
#include "shim.h"

int sluice_rte_errno(void)
{
	return rte_errno;
}
