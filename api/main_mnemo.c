/* mnemo entry point (placeholder until the server lands). */
#include <stdio.h>
int main(void)
{
    fprintf(stderr, "mnemo: server not built yet\n");
    return 1;
}
