/* mnemo entry point: the command line lives in api/api_server.c (mn_api_main). */
#include "mnemo/api.h"

extern char **environ;

int main(int argc, char **argv)
{
    return mn_api_main(argc, argv, environ);
}
