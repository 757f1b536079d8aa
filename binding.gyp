{
  # The native compute addon. Built by scripts/build-native.mjs (the npm `install` script) with node-gyp.
  # Needs only a C++17 compiler and Node's headers: no system library, no -march=native. The AVX2 and AVX-512 code
  # paths are compiled with per-function target pragmas (src/tensor/native/isa_*.cc) and chosen at run time;
  # OpenBLAS, when installed, is dlopen'ed at run time, never linked.
  "targets": [
    {
      "target_name": "neuroshard_native",
      "sources": [
        "src/tensor/native/addon.cc",
        "src/tensor/native/engine.cc",
        "src/tensor/native/pool.cc",
        "src/tensor/native/cpu.cc",
        "src/tensor/native/blas.cc",
        "src/tensor/native/isa_portable.cc",
        "src/tensor/native/isa_avx2.cc",
        "src/tensor/native/isa_avx512.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=fast", "-fno-math-errno", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-psabi"],
      "conditions": [
        ["OS=='linux'", { "libraries": ["-ldl", "-lpthread"] }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": ["-O3", "-ffp-contract=fast", "-fno-math-errno"]
          }
        }],
        ["OS=='win'", { "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } } }]
      ]
    },
    {
      # Gives freed C heap back to the OS (glibc malloc_trim), on a node's main thread: src/tensor/native/heap.cc.
      "target_name": "neuroshard_heap",
      "sources": ["src/tensor/native/heap.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "conditions": [
        ["OS=='mac'", { "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17", "MACOSX_DEPLOYMENT_TARGET": "11.0" } }],
        ["OS=='win'", { "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } } }]
      ]
    },
    {
      # AES-256-GCM contexts kept per lane direction (src/tensor/native/aead.cc, src/p2p/lane/aead.ts): the OpenSSL
      # that the node binary exports (its EVP_* symbols; headers from Node's include dir, which node-gyp puts on the
      # include path): nothing linked. Since session 23 also a VAES-512 kernel of its own, compiled with per-function
      # target attributes and used only where the CPU has it (run-time check). Loaded on a node's main thread.
      "target_name": "neuroshard_aead",
      "sources": ["src/tensor/native/aead.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "conditions": [
        ["OS=='mac'", { "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17", "MACOSX_DEPLOYMENT_TARGET": "11.0", "OTHER_LDFLAGS": ["-undefined", "dynamic_lookup"] } }],
        ["OS=='win'", { "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } } }]
      ]
    }
  ]
}
