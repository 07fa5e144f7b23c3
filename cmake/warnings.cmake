# Warnings are on everywhere; CI (EASEL_WERROR=ON) treats them as errors.
add_library(easel_warnings INTERFACE)
target_compile_options(easel_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-unused-parameter
  -Wno-missing-field-initializers)
if(EASEL_WERROR)
  target_compile_options(easel_warnings INTERFACE -Werror)
endif()
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # g++ 12 at -O3 reports -Wrestrict / -Wstringop-overflow inside libstdc++'s own std::string code for
  # ordinary concatenations (GCC bug 105329/105651); they say nothing about our code.
  target_compile_options(easel_warnings INTERFACE -Wshadow=local -Wno-restrict -Wno-stringop-overflow)
else()
  target_compile_options(easel_warnings INTERFACE -Wshadow-uncaptured-local)
endif()
