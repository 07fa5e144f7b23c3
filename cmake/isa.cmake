# Per-source ISA flags. Release builds never use -march=native: a SIMD file is compiled alone with its ISA's
# flags, and the dispatcher picks it at run time after checking CPUID and the OS's register support.
# File name suffix decides: *_avx2.cpp, *_avx512.cpp, *_avx512bf16.cpp, *_amx.cpp.
set(EASEL_FLAGS_AVX2 -mavx2 -mfma -mf16c)
set(EASEL_FLAGS_AVX512 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # g++ 12 warns -Wmaybe-uninitialized inside its own avx512fintrin.h (the _mm512_undefined_* idiom used by
  # reductions and permutes); it is about the header, not our code.
  list(APPEND EASEL_FLAGS_AVX512 -Wno-maybe-uninitialized)
endif()
set(EASEL_FLAGS_AVX512BF16 ${EASEL_FLAGS_AVX512} -mavx512bf16 -mavx512vnni)
set(EASEL_FLAGS_AMX ${EASEL_FLAGS_AVX512BF16} -mamx-tile -mamx-bf16)

function(easel_apply_isa_flags)
  foreach(src IN LISTS ARGN)
    if(src MATCHES "_amx\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${EASEL_FLAGS_AMX}")
    elseif(src MATCHES "_avx512bf16\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${EASEL_FLAGS_AVX512BF16}")
    elseif(src MATCHES "_avx512\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${EASEL_FLAGS_AVX512}")
    elseif(src MATCHES "_avx2\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${EASEL_FLAGS_AVX2}")
    endif()
  endforeach()
endfunction()
