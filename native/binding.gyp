{
  "targets": [
    {
      "target_name": "eci_native",
      "sources": ["src/addon.cc", "src/idmap.cc", "src/statmount.cc", "src/seccomp.cc", "src/procfs.cc"],
      "cflags": ["<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-Wall", "-Wextra"]
    }
  ]
}
