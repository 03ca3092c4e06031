// SIGPIPE is at its default in the programs this one runs: in `yes | head -1`, yes is killed
// by SIGPIPE once head has gone, silently (status 141 in the shell). With SIGPIPE ignored, yes
// would say "Broken pipe" on stderr (here sent to stdout, to be compared) and exit 1. Its
// status is printed after the pipeline has ended, so that the output has one order.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

int main(void) {
    fflush(stdout);
    int status = system("{ s=$( { { yes 2>&4; echo $? >&3; } | head -1 >&4; } 3>&1 );"
                        " echo \"yes: status $s\"; } 4>&1");
    printf("system: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
