// swift-tools-version:6.0
import PackageDescription

// System libraries come from Debian's -dev packages (scripts/setup.sh installs them).

let package = Package(
    name: "imgconv",
    products: [
        .executable(name: "imgconv", targets: ["imgconv"]),
        .library(name: "ImgConv", targets: ["ImgConv"]),
        // The decoders and container readers without the conversion layer: what Fuzz/ links.
        .library(name: "ImgConvParsers", targets: ["ImgConvCore", "ImgConvCodecs", "ImgConvFormats"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // `swift package generate-documentation --target ImgConv` (the DocC catalog in Sources/ImgConv).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTIFF", pkgConfig: "libtiff-4",
                       providers: [.apt(["libtiff-dev"])]),
        // WebP stills through libwebp's decoder, animations through libwebpdemux's WebPAnimDecoder.
        .systemLibrary(name: "CWebP", pkgConfig: "libwebpdemux",
                       providers: [.apt(["libwebp-dev"])]),
        // GIF through giflib's record-by-record reading (errors come back as codes).
        .systemLibrary(name: "CGIF", pkgConfig: "libgif",
                       providers: [.apt(["libgif-dev"])]),
        // HDF5: headers only (Debian's serial flavour is found by the header itself); the library is
        // opened by the HDF5 thread at first use (see Sources/CHDF5/shim.h).
        .systemLibrary(name: "CHDF5",
                       providers: [.apt(["libhdf5-dev"])]),
        // AVIF and HEIF/HEIC inputs (Debian 12: libavif 0.11, libheif 1.15 with libde265, dav1d, aom);
        // headers only, the libraries are opened at first use (see CShims).
        // (not through pkg-config: its -DAVIF_DLL, a Windows-only define, is a flag SwiftPM refuses)
        .systemLibrary(name: "CAvif",
                       providers: [.apt(["libavif-dev"])]),
        .systemLibrary(name: "CHeif",
                       providers: [.apt(["libheif-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        // The CRC-32 of .npz members (and of what the readers check): ISA-L's, about twice
        // libdeflate 1.14's speed here (28-30 GB/s against 14), the same values as zlib's.
        .systemLibrary(name: "CISAL", pkgConfig: "libisal",
                       providers: [.apt(["libisal-dev"])]),
        // Deflate for --compress .npz members: faster than zlib at a smaller size.
        .systemLibrary(name: "CDeflate", pkgConfig: "libdeflate",
                       providers: [.apt(["libdeflate-dev"])]),
        // XXH3-128 for the manifest's tensor checksums (version 2): Debian 12 has xxHash 0.8.1.
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),
        // SHA-256 (source files, plans, pixel digests) from OpenSSL's libcrypto.
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        // The C code of the project, besides CSystem below: libpng's and libjpeg's setjmp/longjmp error handling and libtiff's
        // variadic tag access, which Swift cannot call directly.
        // libavif and libheif are only compiled against: heif_shim.c opens them when the first AVIF
        // or HEIF file is read (dlopen), so the process does not load their codecs at start.
        .target(name: "CShims", dependencies: ["CPNG", "CTIFF", "CAvif", "CHeif"],
                linkerSettings: [.linkedLibrary("jpeg")]),
        // Linux calls Swift's Glibc module leaves out (they need _GNU_SOURCE): sync_file_range; and
        // sigaction with a blocked set, for the clean-up on signals.
        .target(name: "CSystem"),
        // The 8-bit resampling passes, compiled for the baseline and for x86-64-v2 and picked at
        // load time (target_clones): no compiler flag for the package, which SwiftPM would refuse
        // in a dependency.
        .target(name: "CPixels"),
        // Finds where a raw deflate stream's final block begins, for the threads that compress
        // .npz members in chunks (libdeflate always ends its output with a final block).
        .target(name: "CDeflateWalk"),
        // XXH3-128 from xxHash's header compiled for AVX2 and AVX-512 besides the library's SSE2
        // build, the widest the CPU runs picked at the first call.
        .target(name: "CXXH3", dependencies: ["CXXHash"], linkerSettings: [.linkedLibrary("xxhash")]),
        .target(name: "ImgConvCore", dependencies: [
            "CSystem",
            "CPixels",
            "CXXHash",
            "CXXH3",
            "COpenSSL",
        ]),
        .target(name: "ImgConvCodecs", dependencies: ["ImgConvCore", "CShims", "CTurboJPEG", "CPNG", "CTIFF", "CZlib", "CWebP", "CGIF"]),
        .target(name: "ImgConvFormats", dependencies: ["ImgConvCore", "CZlib", "CDeflate", "CDeflateWalk", "CISAL", "CHDF5", "CShims"]),
        .target(name: "ImgConv", dependencies: ["ImgConvCore", "ImgConvCodecs", "ImgConvFormats"]),
        .executableTarget(name: "imgconv", dependencies: [
            "ImgConv",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "ImgConvTests", dependencies: ["ImgConv", "ImgConvFormats", "ImgConvCore", "ImgConvCodecs"]),
    ]
)
