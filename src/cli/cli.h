// The kindling command line: `kindling <command> [flags]`.
//
// Run parses argv, runs one command and returns the process exit code (see
// exit_codes.h). Results go to stdout (human text, or with --json one JSON
// object on the last line); progress, logs and errors go to stderr. Never
// throws. Not reentrant: it installs signal handlers and the default logger.
#pragma once

namespace kindling::cli {

int Run(int argc, char** argv);

}  // namespace kindling::cli
