// swift-tools-version:5.9
import PackageDescription

// libFuzzer targets for every parser imgconv owns. Not part of the main build: build and run them
// with `bash scripts/fuzz.sh [seconds-per-target]` (Fuzz/README.md).
let targets = ["npy", "zip", "idx", "exif", "manifest", "csv", "png", "jpeg", "tiff", "bmp", "gif", "webp", "h5"]

let package = Package(
    name: "imgconv-fuzz",
    dependencies: [.package(name: "imgconv", path: "..")],  // named: the clone's folder name may differ
    targets: [
        // libFuzzer's driver entry point and memfd_create, which Swift's Glibc does not show.
        .target(name: "CFuzzSupport"),
        .target(name: "FuzzTargets", dependencies: [
            "CFuzzSupport",
            .product(name: "ImgConvParsers", package: "imgconv"),
        ]),
    ] + targets.map { name in
        .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzTargets"], path: "Sources/Executables/fuzz-\(name)")
    }
)
