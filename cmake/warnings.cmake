# Warnings live here, in one place, and are errors everywhere.
add_compile_options(
  -Wall -Wextra -Werror
  -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough
  -Wformat=2 -Wmissing-declarations
)
