/* Build version of mnemo, reported by `mnemo --version` and GET /health. */
#include "mnemo/api.h"

const char *mn_api_version(void)
{
    return "0.1.0";
}
