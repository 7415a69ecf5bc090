import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import ImgConvCore
@testable import ImgConvFormats

/// Memory-mapped file regions (stored `.npy` files and `.npz` members): every byte lent or read
/// exactly across window boundaries, and `pread` taking over when the file shrinks under the map.
final class MappedStreamTests: XCTestCase {
    private func temporaryFile(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "/mapped-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).bin"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        addTeardownBlock { unlink(path) }
        return path
    }

    func testLentAndReadBytesAreTheRegionAcrossSmallWindows() throws {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let file = try ReadOnlyFile(path: try temporaryFile(bytes))
        // A region off a page boundary, 16 KiB windows, pages released every 8 KiB.
        let (offset, length) = (1234, 290_000)
        let stream = FileRegionStream(file: file, offset: offset, length: length, mapped: true,
                                      windowSize: 16384, releaseStep: 8192)
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 3000)
        let sizes = [1, 4095, 5000, 16384, 20000, 7, 40000, 12288]
        var k = 0
        while got.count < length {
            if k % 3 == 2 {
                let n = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
                XCTAssertEqual(n, min(3000, length - got.count))
                got += buffer[0..<n]
            } else {
                let want = sizes[k % sizes.count]
                let lent = try XCTUnwrap(try stream.borrow(want), "a mapped region lends its bytes")
                XCTAssertEqual(lent.count, min(want, length - got.count), "exactly what was asked, fewer only at the end")
                got += Array(lent)
            }
            k += 1
        }
        XCTAssertEqual(got, Array(bytes[offset..<offset + length]))
        XCTAssertEqual(try stream.borrow(10)?.count, 0, "nothing at the end")
        XCTAssertEqual(try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }, 0)
    }

    func testUnmappedRegionDoesNotLend() throws {
        let file = try ReadOnlyFile(path: try temporaryFile([1, 2, 3, 4]))
        let stream = FileRegionStream(file: file, offset: 0, length: 4)
        XCTAssertNil(try stream.borrow(2))
        var scratch: [UInt8] = []
        XCTAssertEqual(try stream.next(3, scratch: &scratch) { Array($0) }, [1, 2, 3], "read into scratch instead")
        XCTAssertEqual(try stream.next(3, scratch: &scratch) { Array($0) }, [4])
    }

    func testFileShrunkUnderTheMapFallsBackToReadAndIsReportedShort() throws {
        let values = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let header = NPYHeader(descr: "|u1", shape: [40_000]).encoded()
        let path = try temporaryFile(header + values)
        let reader = try NPYFileReader(path: path)
        let (parsed, stream) = try reader.open(reader.name)
        XCTAssertEqual(parsed.shape, [40_000])
        var scratch: [UInt8] = []
        XCTAssertEqual(try stream.next(1000, scratch: &scratch) { Array($0) }, Array(values[0..<1000]))
        // Another process cuts the file (inside the mapped window): reading the mapping past the
        // new end would give zeros or SIGBUS; the reader notices and reads (and reports) the rest.
        XCTAssertEqual(truncate(path, off_t(header.count + 30_000)), 0)
        var got = Array(values[0..<1000])
        XCTAssertThrowsError(try {
            while true {
                let piece = try stream.next(5000, scratch: &scratch) { Array($0) }
                if piece.isEmpty { break }
                got += piece
            }
        }()) { error in
            let e = error as? ImgConvError
            XCTAssertEqual(e?.code, .corruptInput)
            XCTAssertTrue(e?.message.contains("data is 30000 bytes, its header needs 40000") ?? false, "\(error)")
        }
        // Lent in 5000-byte pieces up to 26000; the piece past the new end was read, and was short.
        XCTAssertEqual(got, Array(values[0..<26_000]))
    }
}
