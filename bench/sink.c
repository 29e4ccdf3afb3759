/* SPDX-License-Identifier: ISC */
/* sink.c - placeholder until mta-sink lands. */
#include <stdio.h>

int
main(void)
{
	fprintf(stderr, "mta-sink: not implemented yet\n");
	return 1;
}
