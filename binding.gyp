{
  "targets": [
    {
      "target_name": "flatwall_native",
      "sources": [
        "<!@(node -p \"require('./native/sources.json').core.concat(require('./native/sources.json').addon).join(' ')\")"
      ],
      "include_dirs": [
        "native",
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "libraries": ["<!@(pkg-config --libs libxdp libbpf)"],
      "cflags": ["<!@(pkg-config --cflags libxdp libbpf)"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++14", "-std=gnu++17"]
    }
  ]
}
