import XCTest
import CXXH3
@testable import ImgConvCore
@testable import ImgConvFormats

/// The manifest's tensor checksums: version 2's chunked XXH3-128 against values computed by the
/// Python `xxhash` package from the definition in Schemas/manifest.schema.json, and version 1's
/// SHA-256 still read.
final class ChecksumTests: XCTestCase {
    /// Deterministic bytes that differ from chunk to chunk.
    private func pattern(_ count: Int) -> [UInt8] {
        (0..<count).map { i in UInt8(truncatingIfNeeded: i &* 31 &+ (i >> 11) &+ (i >> 22) &* 7) }
    }

    /// (length, hex) computed outside imgconv:
    /// data = bytes((i * 31 + (i >> 11) + (i >> 22) * 7) & 255 for i in range(n));
    /// xxh3_128(b"".join(xxh3_128(data[i:i + 4194304]).digest() for i in range(0, n, 4194304))).hexdigest()
    static let known: [(Int, String)] = [
        (0, "99aa06d3014798d86001c324468d497f"),
        (1, "de68429b8afe28ce97cda390d38d6d2b"),
        (4194303, "f7add405c67876e023842a3c778c4f46"),
        (4194304, "ba1df9e6453995b1d12ef395974929d8"),
        (4194305, "302c395d09841c4183fd27a92d7ab231"),
        (8388608, "8cce541214f6a210470998ba25f49338"),
        (9437307, "eb5bd120d2ec431678d8440a8e75ac63"),
    ]

    private var builds: [UnsafePointer<imc_xxh3_build>] { runnableXXH3Builds() }

    func testChunkedXXH3MatchesTheSchemasDefinitionAtEveryChunkBoundary() {
        let c = ChunkedXXH3.chunkSize
        XCTAssertEqual(c, 4_194_304)
        for (length, expected) in Self.known {
            let data = pattern(length)
            // In one piece, and in pieces that straddle the chunk boundaries in several ways, with each build.
            for piece in [Int.max, 1 << 16, 3 << 20, 4_194_303, 4_194_305, 1_000_003] {
                for build in builds {
                let h = ChunkedXXH3(build: build)
                var at = 0
                data.withUnsafeBytes { all in
                    while at < length {
                        let n = min(piece, length - at)
                        h.update(UnsafeRawBufferPointer(rebasing: all[at..<(at + n)]))
                        at += n
                    }
                }
                XCTAssertEqual(h.finish(), expected, "length \(length), pieces of \(piece), \(String(cString: build.pointee.name))")
                }
            }
            // Chunks hashed apart and their digests added in order.
            let apart = ChunkedXXH3()
            data.withUnsafeBytes { all in
                for start in stride(from: 0, to: length, by: c) {
                    apart.add(chunkDigest: ChunkedXXH3.chunkDigest(UnsafeRawBufferPointer(rebasing: all[start..<min(length, start + c)])))
                }
            }
            XCTAssertEqual(apart.finish(), expected, "length \(length), chunk by chunk")
        }
    }

    /// Each compiled XXH3 build gives the library's value on every input length class of XXH3
    /// (0-16, 17-128, 129-240 bytes, longer: stripes, blocks and a last partial one), in one call
    /// and streamed in uneven pieces; the process uses the widest one the CPU runs.
    func testEveryXXH3BuildGivesTheLibrarysValues() {
        let names = builds.map { String(cString: $0.pointee.name) }
        XCTAssertEqual(names.first, "library")
        if getenv("IMGCONV_XXH3") == nil {
            XCTAssertEqual(String(cString: imc_xxh3_best().pointee.name), names.last)
        }
        let data = pattern(70_001)
        let lengths = Array(0...300) + [1023, 1024, 1025, 4095, 4096, 16_383, 16_384, 65_537, 70_001]
        let library = builds[0].pointee
        data.withUnsafeBytes { all in
            for build in builds.dropFirst() {
                let b = build.pointee
                for n in lengths {
                    let want = library.hash(all.baseAddress, n), got = b.hash(all.baseAddress, n)
                    XCTAssertTrue(want.low64 == got.low64 && want.high64 == got.high64, "\(String(cString: b.name)), \(n) bytes")
                }
                let state = b.create()!
                for n in [0, 1, 17, 200, 1000, 70_001] {
                    b.reset(state)
                    var at = 0, piece = 1
                    while at < n {
                        let k = min(piece, n - at)
                        b.update(state, all.baseAddress! + at, k)
                        at += k
                        piece = piece * 3 + 1
                    }
                    let want = library.hash(all.baseAddress, n), got = b.digest(state)
                    XCTAssertTrue(want.low64 == got.low64 && want.high64 == got.high64, "\(String(cString: b.name)), streamed \(n) bytes")
                }
                b.destroy(state)
            }
        }
        XCTAssertNil(imc_xxh3_named("sse9"))
    }

    /// A setting the environment gets wrong is named with what is used instead; right ones are silent.
    func testEnvironmentWarningsNameTheSettingAndWhatIsUsed() {
        func warnings(_ env: [String: String]) -> [String] { environmentWarnings { env[$0] } }
        XCTAssertEqual(warnings([:]), [])
        XCTAssertEqual(warnings(["IMGCONV_DIRECT_IO": "always", "IMGCONV_XXH3": "library"]), [])
        XCTAssertEqual(warnings(["IMGCONV_DIRECT_IO": "alway"]),
                       ["IMGCONV_DIRECT_IO='alway' is not auto, always or never: auto is used"])
        let best = String(cString: imc_xxh3_best().pointee.name)
        let lines = warnings(["IMGCONV_XXH3": "sse9"])
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0].hasPrefix("IMGCONV_XXH3='sse9' is not an XXH3 build this CPU runs (library"), lines[0])
        XCTAssertTrue(lines[0].hasSuffix("): \(best) is used"), lines[0])
    }

    func testBackgroundDigestGivesTheChecksumAndTheCRCOfWhatPassed() {
        let data = pattern(9 << 20 | 12345)
        var crc = CRC32()
        crc.update(data)
        for algorithm in [TensorHashAlgorithm.sha256, .xxh3] {
            let d = BackgroundDigest(crc: true, algorithm: algorithm)
            // Small pieces (staged), a large owned array (handed over) and small pieces again.
            data.withUnsafeBytes { all in d.update(UnsafeRawBufferPointer(rebasing: all[0..<1000])) }
            d.update(owned: Array(data[1000..<(5 << 20)]))
            data.withUnsafeBytes { all in
                var at = 5 << 20
                while at < data.count {
                    let n = min(70_001, data.count - at)
                    d.update(UnsafeRawBufferPointer(rebasing: all[at..<(at + n)]))
                    at += n
                }
            }
            var direct = TensorHasher(algorithm)
            direct.update(data)
            let (digest, value) = d.finish()
            XCTAssertEqual(digest, direct.finish(), "\(algorithm)")
            XCTAssertEqual(value, crc.value)
        }
        XCTAssertEqual(tensorDigest([]), Self.known[0].1)
        var sha = TensorHasher(.sha256)
        sha.update([UInt8]("abc".utf8))
        XCTAssertEqual(sha.finish(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    private func manifestJSON(version: Int, tensor: String) -> [UInt8] {
        Array("""
        {"format": "imgconv-manifest", "version": \(version), "tool": {"name": "imgconv", "version": "0.1.0"},
         "source": {"root": "r", "kind": "folders"}, "output": {"format": "npz", "name": "o.npz"},
         "options": {"color": "auto", "compress": false, "skipBad": false, "resizeFilter": "bilinear", "dtype": "auto",
                     "exifOrientation": true, "allowTruncatedJpeg": false, "tiffPages": "first", "maxPixels": 1},
         "classes": [], "tensors": [{"name": "trainXs", "shape": [0], "dtype": "uint8", \(tensor)}],
         "files": [], "skipped": [], "warnings": [],
         "summary": {"images": 0, "skipped": 0, "skippedByReason": {}, "rotated": 0, "ignoredTiffPages": 0}}
        """.utf8)
    }

    func testManifestVersionsAndTheirChecksums() throws {
        let sha = String(repeating: "ab", count: 32), xxh = String(repeating: "cd", count: 16)
        let v1 = try Manifest.decode(manifestJSON(version: 1, tensor: "\"sha256\": \"\(sha)\""), path: "m")
        XCTAssertEqual(v1.tensorHash, .sha256)
        XCTAssertEqual(v1.tensors[0].digest(.sha256), sha)
        XCTAssertNil(v1.tensors[0].digest(.xxh3))
        let v2 = try Manifest.decode(manifestJSON(version: 2, tensor: "\"xxh3\": \"\(xxh)\""), path: "m")
        XCTAssertEqual(v2.tensorHash, .xxh3)
        XCTAssertEqual(v2.tensors[0].digest(.xxh3), xxh)
        // Encoded again: the same version and member, the keys in order.
        let again = String(decoding: try v2.encoded(), as: UTF8.self)
        XCTAssertTrue(again.contains("\"xxh3\": \"\(xxh)\""), again)
        XCTAssertTrue(again.contains("\"version\": 2"), again)
        XCTAssertFalse(again.contains("sha256"))
        XCTAssertEqual(try Manifest.decode(try v2.encoded(), path: "m"), v2)
        XCTAssertEqual(try Manifest.decode(try v1.encoded(), path: "m"), v1)

        let refused: [(Int, String, String)] = [
            (2, "\"sha256\": \"\(sha)\"", "has a 'sha256'"),
            (1, "\"xxh3\": \"\(xxh)\"", "has a 'xxh3'"),
            (2, "\"xxh3\": \"\(sha)\"", "no 'xxh3' of 32 lowercase hex digits"),
            (2, "\"xxh3\": \"\(xxh.uppercased())\"", "no 'xxh3' of 32"),
            (1, "\"dtype2\": 1", "no 'sha256' of 64"),
            (3, "\"xxh3\": \"\(xxh)\"", "version 3 is not one this imgconv reads"),
        ]
        for (version, member, why) in refused {
            XCTAssertThrowsError(try Manifest.decode(manifestJSON(version: version, tensor: member), path: "m.json")) { error in
                let e = error as? ImgConvError
                XCTAssertEqual(e?.code, .corruptInput)
                XCTAssertTrue(e?.message.contains(why) ?? false, "\(version) \(member): \(String(describing: e?.message))")
            }
        }
    }
}
