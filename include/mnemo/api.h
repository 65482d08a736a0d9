/* The API layer: HTTP handlers over the engine, the server lifecycle, the CLI. */
#ifndef MNEMO_API_H
#define MNEMO_API_H

/* Version string of this build. */
const char *mn_api_version(void);

#endif
