/*
 * The hand-written half of a student's audit logger (not peerdex): the procedure
 * behind rpcgen's server stub for `void LOG(string) = 1` in version 1. It prints each
 * received string as a line on stdout and flushes at once, so a test reading the
 * server's stdout sees every record as it arrives.
 *
 * Added beside the usual procedure: SIGTERM and SIGINT unregister the program from
 * rpcbind (what rpcgen's main does at start, pmap_unset) and exit 0, so a test that
 * stops the server leaves no stale registration behind.
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <rpc/pmap_clnt.h>
#include "logv1.h"

void *
log_1_svc(char **argp, struct svc_req *rqstp)
{
	static char result; /* void procedure: any non-NULL pointer means "reply" */

	(void) rqstp;
	printf("%s\n", *argp);
	fflush(stdout);
	return (void *) &result;
}

static void
on_stop(int sig)
{
	(void) sig;
	pmap_unset(LOGGER_PROG, LOGGER_V1);
	fflush(stdout);
	_exit(0);
}

/* Runs before rpcgen's main. */
__attribute__((constructor)) static void
install_stop_handlers(void)
{
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
}
