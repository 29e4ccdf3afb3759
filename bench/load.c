/* SPDX-License-Identifier: ISC */
/* load.c - placeholder until mta-load lands. */
#include <stdio.h>

int
main(void)
{
	fprintf(stderr, "mta-load: not implemented yet\n");
	return 1;
}
