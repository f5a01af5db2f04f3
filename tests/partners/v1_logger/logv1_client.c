/*
 * A student's client for the version 1 logger (not peerdex), built on rpcgen's client
 * stub: `logv1_client HOST tcp|udp LINE...` calls LOG once per LINE (version 1) and
 * prints `sent <n>`; exit 0 on success, 1 when a call fails (clnt_perror on stderr).
 */
#include <stdio.h>
#include <string.h>
#include "logv1.h"

int
main(int argc, char **argv)
{
	CLIENT *clnt;
	struct timeval tv = { 5, 0 };
	int i;

	if (argc < 4) {
		fprintf(stderr, "usage: %s HOST tcp|udp LINE...\n", argv[0]);
		return 2;
	}
	clnt = clnt_create(argv[1], LOGGER_PROG, LOGGER_V1, argv[2]);
	if (clnt == NULL) {
		clnt_pcreateerror(argv[1]);
		return 1;
	}
	clnt_control(clnt, CLSET_TIMEOUT, (char *) &tv);
	for (i = 3; i < argc; i++) {
		if (log_1(&argv[i], clnt) == NULL) {
			clnt_perror(clnt, "LOG");
			clnt_destroy(clnt);
			return 1;
		}
	}
	clnt_destroy(clnt);
	printf("sent %d\n", argc - 3);
	return 0;
}
