// The kindling binary: every command lives in cli/.
#include "cli/cli.h"

int main(int argc, char** argv) { return kindling::cli::Run(argc, argv); }
