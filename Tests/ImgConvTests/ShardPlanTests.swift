import Foundation
import XCTest
@testable import ImgConv
@testable import ImgConvCore
@testable import ImgConvFormats

final class ShardPlanTests: XCTestCase {
    /// The plan file is written without `JSONEncoder` for its files and images; its bytes must
    /// still be `JSONEncoder`'s, escapes included (file names with quotes, backslashes, control
    /// characters and non-ASCII text), and its hash must check.
    func testPlanBytesAreJSONEncodersAndTheHashChecks() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("imgconv-plan-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let names = ["plain.png", "quote\"d.png", "back\\slash.png", "new\nline.png", "ctl\u{01}x.png", "tab\there.png",
                     "caf\u{E9}.png", "\u{1F600}.png", "sl/ash"]
        var pixels = [UInt8](repeating: 0, count: 4 * 3 * 3)
        for (k, cls) in ["a\"b", "\u{3B1}", "plain"].enumerated() {
            try FileManager.default.createDirectory(atPath: root + "/" + cls + "/sl", withIntermediateDirectories: true)
            for (i, name) in names.enumerated() {
                pixels[0] = UInt8(k * 16 + i)
                let png = try pixels.withUnsafeBytes { try PNGEncoder.encode($0, width: 4, height: 3, channels: 3, bitDepth: 8) }
                let path = root + "/" + cls + "/" + (name == "sl/ash" ? "sl/ash.png" : name)
                XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(png)))
            }
        }
        var options = ConversionOptions()
        options.split = nil
        let converter = Converter(options: options)
        let (plan, bytes) = try converter.makeShardPlanFile(source: .folders(root), shards: 3, balance: .images)
        XCTAssertEqual(plan.splits.reduce(0) { $0 + $1.items.count }, 3 * names.count)

        var blank = plan
        blank.hash = ""
        let reference = Array(try ShardPlan.jsonEncoder().encode(blank)) + [0x0A]
        XCTAssertTrue(try blank.encoded() == reference, "the plan's JSON differs from JSONEncoder's")
        XCTAssertEqual(sha256Hex(reference), plan.hash)
        let sealed = Array(try ShardPlan.jsonEncoder().encode(plan)) + [0x0A]
        XCTAssertTrue(bytes == sealed, "the sealed plan differs from JSONEncoder's encoding of it")

        XCTAssertEqual(try ShardPlan.load("plan.json", bytes: bytes), plan)
        // One changed byte in a file name: the hash no longer checks.
        var changed = bytes
        let at = try XCTUnwrap(ShardPlan.firstIndex(of: Array("plain.png".utf8), in: changed))
        changed[at] = UInt8(ascii: "P")
        XCTAssertThrowsError(try ShardPlan.load("plan.json", bytes: changed))
    }
}
