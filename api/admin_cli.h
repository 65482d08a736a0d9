/* `mnemo admin`: the operator's view of a cluster through any node's HTTP API
 * (api/admin_cli.c). Private to api/. */
#ifndef MN_API_ADMIN_CLI_H
#define MN_API_ADMIN_CLI_H

/* Exit codes of `mnemo admin` (docs/api.md, "mnemo admin"). */
enum {
    ADMIN_OK = 0,          /* done; status: every space has its copies, every member alive */
    ADMIN_REFUSED = 1,     /* the node answered with an error (printed) */
    ADMIN_USAGE = 2,       /* bad command line */
    ADMIN_DEGRADED = 3,    /* status: a space lacks copies, fails over or has none alive, a
                            * member is not alive; drain --wait: not drained in time */
    ADMIN_UNREACHABLE = 4, /* cannot connect, or no answer in time */
};

/* argv[0] = "mnemo", argv[1] = "admin", argv[2] = the subcommand. Returns the exit code. */
int mn_admin_main(int argc, char **argv);

#endif
