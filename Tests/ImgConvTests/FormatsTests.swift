import XCTest
import CDeflateWalk
import CZlib
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
        // empty, for every level, compressed one or two to a job; joined, they inflate to the input.
        var rng = SystemRandomNumberGenerator()
        let noise = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let pattern = (0..<700_000).map { UInt8(truncatingIfNeeded: ($0 / 3) &* 7 ^ ($0 >> 9)) }
        let pieces: [[UInt8]] = [pattern, noise, [], [42], Array(pattern.prefix(5000)), noise + pattern]
        for level in [1, 6, 12] as [Int32] {
            for order in [pieces, pieces.reversed()] {
                for perJob in [1, 2] {
                    var joined: [UInt8] = []
                    for first in stride(from: 0, to: order.count, by: perJob) {
                        let job = order[first..<min(first + perJob, order.count)]
                        let endsStream = first + job.count == order.count
                        var streams = try job.map { chunk in try chunk.withUnsafeBytes { try ParallelDeflater.deflate($0, level: level) } }
                        let open = endsStream ? streams.count - 1 : streams.count
                        if open == 2 {
                            let (a, b) = try ParallelDeflater.finalBlocks(streams[0], streams[1])
                            ParallelDeflater.leaveOpen(&streams[0], a)
                            ParallelDeflater.leaveOpen(&streams[1], try XCTUnwrap(b))
                        } else if open == 1 {
                            ParallelDeflater.leaveOpen(&streams[0], try ParallelDeflater.finalBlocks(streams[0], nil).0)
                        }
                        joined += streams.flatMap { $0 }
                    }
                    var back: [UInt8] = []
                    let inflater = try Inflater()
                    let used = try joined.withUnsafeBytes { try inflater.feed($0) { back += $0 } }
                    XCTAssertTrue(inflater.ended)
                    XCTAssertEqual(used, joined.count)
                    XCTAssertEqual(back, order.flatMap { $0 }, "level \(level), \(perJob) a job")
                }
            }
        }
        // The compressor's own cutting: whole jobs, one chunk short of a job, and an exact number of jobs.
        for count in [0, 1, ParallelDeflater.chunkSize + 7, 2 * ParallelDeflater.chunkSize] {
            let data = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
            var joined: [UInt8] = []
            let deflater = ParallelDeflater(level: 6, threads: 2)
            try data.withUnsafeBytes { try deflater.feed($0) { joined += $0 } }
            try deflater.finish { joined += $0 }
            var back: [UInt8] = []
            let inflater = try Inflater()
            _ = try joined.withUnsafeBytes { try inflater.feed($0) { back += $0 } }
            XCTAssertTrue(inflater.ended)
            XCTAssertEqual(back, data, "\(count) bytes")
        }
    }

    /// zlib's inflate stopping at every block boundary (`Z_BLOCK`): where a stream's final block
    /// begins and the padding after it, as `imc_deflate_find_final` should find them.
    private func zlibFinalBlock(_ stream: [UInt8]) throws -> (Int, Int) {
        var z = z_stream()
        XCTAssertEqual(inflateInit2_(&z, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)), Z_OK)
        defer { inflateEnd(&z) }
        var scratch = [UInt8](repeating: 0, count: 64 << 10)
        var header = 0, padding = 0
        var input = stream
        try input.withUnsafeMutableBytes { inp in
            z.next_in = inp.baseAddress!.assumingMemoryBound(to: Bytef.self)
            z.avail_in = UInt32(inp.count)
            try scratch.withUnsafeMutableBytes { out in
                while true {
                    z.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    z.avail_out = UInt32(out.count)
                    let rc = inflate(&z, Z_BLOCK)
                    if rc == Z_STREAM_END { break }
                    guard rc == Z_OK else { throw ImgConvError(.internal, "zlib \(rc)") }
                    if z.data_type & 128 != 0 {
                        if z.data_type & 64 == 0 { header = Int(z.total_in) * 8 - Int(z.data_type & 7) } else { padding = Int(z.data_type & 7) }
                    }
                }
            }
        }
        XCTAssertEqual(Int(z.total_in), stream.count)
        return (header, padding)
    }

    func testDeflateWalkFindsTheFinalBlockAsZlibDoes() throws {
        // Streams with dynamic, fixed and stored blocks (libdeflate's choice for each input and
        // level), walked alone and two together, against zlib's block-by-block inflate.
        var rng = SystemRandomNumberGenerator()
        let noise = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let pattern = (0..<900_000).map { UInt8(truncatingIfNeeded: ($0 / 3) &* 7 ^ ($0 >> 9)) }
        let skewed = (0..<400_000).map { _ in UInt8.random(in: 0...255, using: &rng) & UInt8.random(in: 0...255, using: &rng) }
        let inputs: [[UInt8]] = [[], [7], Array("abcabcabc".utf8), Array(pattern.prefix(300)), pattern, noise, skewed,
                                 Array(noise.prefix(70_000)) + Array(pattern.prefix(70_000)) + Array(noise.suffix(70_000))]
        for level in [0, 1, 4, 6, 9, 12] as [Int32] {
            let streams = try inputs.map { input in try input.withUnsafeBytes { try ParallelDeflater.deflate($0, level: level) } }
            for (i, stream) in streams.enumerated() {
                let expected = try zlibFinalBlock(stream)
                let alone = try ParallelDeflater.finalBlocks(stream, nil).0
                XCTAssertEqual(alone.final_header_bit, expected.0, "input \(i), level \(level)")
                XCTAssertEqual(Int(alone.padding_bits), expected.1, "input \(i), level \(level)")
                let partner = streams[(i + 3) % streams.count]
                let (a, b) = try ParallelDeflater.finalBlocks(stream, partner)
                let partnerExpected = try zlibFinalBlock(partner)
                XCTAssertEqual([a.final_header_bit, Int(a.padding_bits)], [expected.0, expected.1], "input \(i) with a partner, level \(level)")
                XCTAssertEqual([b?.final_header_bit, b.map { Int($0.padding_bits) }], [partnerExpected.0, partnerExpected.1])
            }
        }
        // Malformed streams are refused, alone or beside a good one: cut short, a byte after the
        // end, the reserved block type, a stored block whose length and complement disagree.
        let good = try pattern.withUnsafeBytes { try ParallelDeflater.deflate($0, level: 6) }
        let bad: [[UInt8]] = [Array(good.prefix(good.count / 2)), Array(good.dropLast()), good + [0], [0x07, 0x00],
                              [0x01, 0x02, 0x00, 0xFC, 0xFF, 1, 2], []]
        for stream in bad {
            XCTAssertThrowsError(try ParallelDeflater.finalBlocks(stream, nil), "\(stream.prefix(8))")
            XCTAssertThrowsError(try ParallelDeflater.finalBlocks(good, stream))
            XCTAssertThrowsError(try ParallelDeflater.finalBlocks(stream, good))
        }
    }

    /// ISA-L's CRC-32 gives zlib's values: every length up to 600 bytes at every start offset
    /// mod 64 (its loops' edges), longer buffers, and a buffer fed in uneven pieces.
    func testCRCIsZlibs() {
        let data = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        data.withUnsafeBytes { all in
            func zlib(_ start: Int, _ n: Int) -> UInt32 {
                UInt32(crc32(0, all.baseAddress!.assumingMemoryBound(to: UInt8.self) + start, UInt32(n)))
            }
            for start in 0..<64 {
                for n in 0...600 {
                    var c = CRC32()
                    c.update(UnsafeRawBufferPointer(rebasing: all[start..<(start + n)]))
                    XCTAssertEqual(c.value, zlib(start, n), "\(n) bytes from \(start)")
                }
            }
            for n in [4095, 4096, 65_537, 1 << 20, 3 << 20] {
                var c = CRC32()
                c.update(UnsafeRawBufferPointer(rebasing: all[0..<n]))
                XCTAssertEqual(c.value, zlib(0, n), "\(n) bytes")
                XCTAssertEqual(c.length, n)
            }
            var pieces = CRC32(), at = 0, piece = 1
            while at < all.count {
                let k = min(piece, all.count - at)
                pieces.update(UnsafeRawBufferPointer(rebasing: all[at..<(at + k)]))
                at += k
                piece = piece * 5 + 3
            }
            XCTAssertEqual(pieces.value, zlib(0, all.count))
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
