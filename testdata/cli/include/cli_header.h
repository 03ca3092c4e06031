/* Found only through -I testdata/cli/include. */
#define CLI_HEADER "cli_header.h"
