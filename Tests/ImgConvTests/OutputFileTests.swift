import XCTest
import Glibc
@testable import ImgConvCore
import Foundation

/// `AtomicOutputFile` with direct I/O (`DirectOutput`): the file holds exactly the bytes written
/// and patched, whatever the pieces' sizes and wherever a patch falls (in the stage being filled,
/// in one already written direct, across the two), read back after `flush` and after `commit`.
final class OutputFileTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        // Beside the build, on the disk (the system's temporary folder may be a tmpfs).
        dir = FileManager.default.currentDirectoryPath + "/.build/imgconv-outputfile-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func contents(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Writes pieces of many sizes (a byte to over two stages) and patches, mirrored in memory.
    private func exercise(_ out: AtomicOutputFile) throws -> [UInt8] {
        var expected: [UInt8] = []
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        func write(_ n: Int) throws {
            let piece = (0..<n).map { _ in next() }
            try out.write(piece)
            expected += piece
        }
        func patch(_ n: Int, at position: Int) throws {
            let piece = (0..<n).map { _ in next() }
            try out.patch(piece, at: position)
            expected.replaceSubrange(position..<(position + n), with: piece)
        }
        let stage = DirectOutput.stageSize
        try write(128)                          // a header
        try write(196_608)
        try write(1)
        try write(stage + 12_345)               // past the first stage in one piece
        try patch(16, at: 0)                    // in a stage written direct
        try write(3 * stage - 7)
        try patch(100, at: expected.count - 150) // in the stage being filled
        try patch(4096, at: (expected.count / stage) * stage - 1000)   // across the two
        try out.flush()
        XCTAssertEqual(try contents(out.temporaryPath), expected, "every byte is in the file after flush")
        try write(65_536)
        try write(stage - (expected.count % stage))   // ends exactly on a stage
        try patch(8, at: 7)
        try write(999)
        return expected
    }

    /// A direct output's bytes, committed, against the same writes mirrored in memory.
    private func checkDirectOutput(_ name: String) throws {
        let target = dir + "/" + name
        let out = try AtomicOutputFile(target: target, directIO: true)
        guard out.writesDirect else {
            out.abort()
            throw XCTSkip("this file system takes no direct I/O: nothing to check here")
        }
        let expected = try exercise(out)
        try out.commit()
        XCTAssertEqual(try contents(target), expected)
    }

    func testDirectOutputHoldsExactlyTheBytesWritten() throws {
        try checkDirectOutput("t.bin")
    }

    func testRefusedDirectWritesGoThroughThePageCache() throws {
        // A direct write the device refuses (a misaligned buffer: EINVAL) is made through the page
        // cache, and so is every stage after it.
        DirectOutput.misalignForTesting = true
        defer { DirectOutput.misalignForTesting = false }
        try checkDirectOutput("m.bin")
    }

    func testBufferedOutputIsTheSame() throws {
        let target = dir + "/b.bin"
        let out = try AtomicOutputFile(target: target)
        XCTAssertFalse(out.writesDirect)
        let expected = try exercise(out)
        try out.commit()
        XCTAssertEqual(try contents(target), expected)
    }

    func testAbortWithAStageInFlightLeavesNothing() throws {
        let target = dir + "/a.bin"
        let out = try AtomicOutputFile(target: target, directIO: true)
        try out.write([UInt8](repeating: 5, count: 3 * DirectOutput.stageSize + 17))
        let temporary = out.temporaryPath
        out.abort()
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary))
        XCTAssertFalse(FileManager.default.fileExists(atPath: target))
    }
}

final class DirectIOPolicyTests: XCTestCase {
    func testDirectIOIsForFilesOfAnEighthOfTheMemory() throws {
        guard (DirectIOMode(setting: DirectOutput.setting) ?? .auto) == .auto else {
            throw XCTSkip("IMGCONV_DIRECT_IO=\(DirectOutput.setting ?? "") is set for this run")
        }
        let eighth = MemoryCeiling.physical / 8
        XCTAssertFalse(directIOWanted(forBytes: eighth - 1))
        XCTAssertTrue(directIOWanted(forBytes: eighth))
        XCTAssertFalse(directIOWanted(count: 4000, bytesPerItem: 3), "a small file keeps the page cache")
        XCTAssertTrue(directIOWanted(count: Int.max / 2, bytesPerItem: 3), "a product past Int is large")
    }
}
