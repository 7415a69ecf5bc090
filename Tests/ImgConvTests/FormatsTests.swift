import XCTest
@testable import ImgConvCore
@testable import ImgConvFormats

final class NPYHeaderTests: XCTestCase {
    func testHeaderIsNumpysTextAlignedTo64() {
        let bytes = NPYHeader(descr: "|u1", shape: [60000, 28, 28]).encoded()
        XCTAssertEqual(bytes.count % 64, 0)
        let text = String(decoding: bytes[10...], as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("{'descr': '|u1', 'fortran_order': False, 'shape': (60000, 28, 28), }"))
        XCTAssertTrue(text.hasSuffix(" \n"))
    }

    func testOneDimensionalShapeHasTrailingComma() {
        let bytes = NPYHeader(descr: "<i8", shape: [5]).encoded()
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).contains("'shape': (5,)"))
    }

    func testHeaderRewrittenWithSmallerCountKeepsItsLength() throws {
        let first = NPYHeader(descr: "|u1", shape: [123456, 4, 4, 3]).encoded()
        let later = NPYHeader(descr: "|u1", shape: [7, 4, 4, 3]).encoded(length: first.count)
        XCTAssertEqual(first.count, later.count)
        let (parsed, offset) = try NPYHeader.parse(later, path: "x")
        XCTAssertEqual(parsed.shape, [7, 4, 4, 3])
        XCTAssertEqual(offset, later.count)
    }

    func testParseRejectsWhatNumpyRejects() {
        func header(_ dict: String) -> [UInt8] {
            var text = Array(dict.utf8) + [0x0A]
            while (text.count + 10) % 64 != 0 { text.insert(0x20, at: text.count - 1) }
            return NPYHeader.magic + [1, 0, UInt8(text.count & 0xFF), UInt8(text.count >> 8)] + text
        }
        let bad = [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }",
            "{'descr': '<f4', 'shape': (2,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }",
        ]
        for dict in bad {
            XCTAssertThrowsError(try NPYHeader.parse(header(dict), path: "f.npy"), dict) { error in
                let e = error as! ImgConvError
                XCTAssertEqual(e.code, .corruptInput)
                XCTAssertEqual(e.path, "f.npy")
            }
        }
        XCTAssertNoThrow(try NPYHeader.parse(header("{\"shape\": (3, 2), \"descr\": \"<u2\", \"fortran_order\": False}"), path: "ok"))
    }
}

final class ZipRoundTripTests: XCTestCase {
    private func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "imgconv-test-\(getpid())-\(name)"
    }

    private func writeAndRead(compress: Bool) throws {
        let path = temporaryPath(compress ? "deflate.npz" : "stored.npz")
        defer { unlink(path); unlink(path + ".manifest.json") }
        let writer = NPZWriter(path: path, compress: compress)
        let plan = ImagePlan(width: 3, height: 2, channels: 1, depth: .eight)
        try writer.begin(plan: plan, count: 5)  // two of five "skipped": the header is rewritten
        let images: [[UInt8]] = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [200, 201, 202, 203, 204, 205]]
        for image in images { try image.withUnsafeBytes { try writer.append(image: $0) } }
        let records = try writer.finish(labels: [0, 1, 1], classNames: ["a", "bé"])
        try writer.commit()
        XCTAssertEqual(records.map(\.name), ["trainXs", "trainYs", "classNames"])
        XCTAssertEqual(records[0].shape, [3, 2, 3, 1])

        let container = try NPZReader(path: path)
        XCTAssertEqual(container.tensorNames, ["trainXs", "trainYs", "classNames"])
        let (header, stream) = try container.open("trainXs")
        XCTAssertEqual(header.shape, [3, 2, 3, 1])
        XCTAssertEqual(try stream.read(count: 100), images.flatMap { $0 })
        let (namesHeader, names) = try container.open("classNames")
        XCTAssertEqual(namesHeader.descr, "<U2")
        XCTAssertEqual(decodeUnicodeArray(try names.read(count: 100), descr: "<U2", count: 2), ["a", "bé"])
    }

    func testStoredRoundTrip() throws { try writeAndRead(compress: false) }
    func testDeflatedRoundTrip() throws { try writeAndRead(compress: true) }

    func testFlippedByteIsACRCErrorNamingTheMember() throws {
        let path = temporaryPath("flip.npz")
        defer { unlink(path) }
        let writer = NPZWriter(path: path)
        try writer.begin(plan: ImagePlan(width: 4, height: 4, channels: 1, depth: .eight), count: 1)
        try [UInt8](repeating: 9, count: 16).withUnsafeBytes { try writer.append(image: $0) }
        _ = try writer.finish(labels: [0], classNames: ["only"])
        try writer.commit()
        var bytes = try readFile(path)
        let reader = try ZipReader(path: path)
        let member = reader.member(named: "trainXs.npy")!
        bytes[member.dataOffset + 130] ^= 0xFF  // inside the pixels (the NPY header is 128 bytes)
        try writeFileAtomically(path, bytes)
        let container = try NPZReader(path: path)
        let (_, stream) = try container.open("trainXs")
        XCTAssertThrowsError(try stream.read(count: 100)) { error in
            XCTAssertTrue("\(error)".contains("trainXs.npy"), "\(error)")
            XCTAssertTrue("\(error)".contains("CRC-32"), "\(error)")
        }
    }

    func testAbortLeavesEarlierFileAndNoTemporary() throws {
        let path = temporaryPath("keep.npz")
        defer { unlink(path) }
        try writeFileAtomically(path, [1, 2, 3])
        let writer = NPZWriter(path: path)
        try writer.begin(plan: ImagePlan(width: 1, height: 1, channels: 1, depth: .eight), count: 1)
        writer.abort()
        XCTAssertEqual(try readFile(path), [1, 2, 3])
        let dir = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())
        XCTAssertFalse(dir.contains { $0.contains("keep.npz.imgconv-") })
    }

    func testDeflatedChunksJoinIntoOneStream() throws {
        // Chunks of every kind: compressible, incompressible (libdeflate stores them), tiny and
        // empty, for every level; joined, they inflate to the input.
        var rng = SystemRandomNumberGenerator()
        let noise = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let pattern = (0..<700_000).map { UInt8(truncatingIfNeeded: ($0 / 3) &* 7 ^ ($0 >> 9)) }
        let pieces: [[UInt8]] = [pattern, noise, [], [42], Array(pattern.prefix(5000)), noise + pattern]
        for level in [1, 6, 12] as [Int32] {
            for order in [pieces, pieces.reversed()] {
                var joined: [UInt8] = []
                for (k, chunk) in order.enumerated() {
                    joined += try ParallelDeflater.compress(chunk, last: k == order.count - 1, level: level)
                }
                var back: [UInt8] = []
                let inflater = try Inflater()
                let used = try joined.withUnsafeBytes { try inflater.feed($0) { back += $0 } }
                XCTAssertTrue(inflater.ended)
                XCTAssertEqual(used, joined.count)
                XCTAssertEqual(back, order.flatMap { $0 }, "level \(level)")
            }
        }
    }

    func testCRCCombine() {
        var a = CRC32(), b = CRC32(), ab = CRC32()
        a.update([1, 2, 3])
        b.update([4, 5, 6, 7])
        ab.update([1, 2, 3, 4, 5, 6, 7])
        XCTAssertEqual(CRC32.combine(a.value, b.value, lengthOfB: 4), ab.value)
    }
}
