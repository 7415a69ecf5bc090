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
        let (plan, bytes) = try Self.plan(root: root, classes: ["a\"b", "\u{3B1}", "plain"], names: names)
        XCTAssertEqual(plan.splits.reduce(0) { $0 + $1.items.count }, 3 * names.count)
        // Escapes in the file names: the plan's own reader leaves this text to JSONDecoder.
        XCTAssertNil(try PlanJSONReader.decode(bytes))

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

    /// A plan whose file names need no escapes is read by the plan's own reader, to the same
    /// value `JSONDecoder` reads; re-indented, it is left to `JSONDecoder` and loads the same.
    func testPlanReaderReadsWhatJSONDecoderReads() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("imgconv-plan-r-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (plan, bytes) = try Self.plan(root: root, classes: ["\u{3B1}", "plain", "b"],
                                          names: ["plain.png", "caf\u{E9}.png", "\u{1F600}.png", "sl/ash", "x y.png"],
                                          split: "train=0.6,val=0.4", shards: 2)
        XCTAssertEqual(plan.splits.count, 2)
        let fast = try XCTUnwrap(try PlanJSONReader.decode(bytes), "a plan in the canonical form is read by PlanJSONReader")
        XCTAssertEqual(fast, try JSONDecoder().decode(ShardPlan.self, from: Data(bytes)))
        XCTAssertEqual(fast, plan)
        XCTAssertEqual(try ShardPlan.load("plan.json", bytes: bytes), plan)

        let object = try JSONSerialization.jsonObject(with: Data(bytes))
        let indented = Array(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]))
        XCTAssertNil(try PlanJSONReader.decode(indented))
        XCTAssertEqual(try ShardPlan.load("plan.json", bytes: indented), plan)
        // A changed image (width 4 to 5) no longer matches the hash, whichever reader reads it.
        var changed = bytes
        let at = try XCTUnwrap(ShardPlan.firstIndex(of: Array("\"pages\":1,\"width\":4}".utf8), in: changed))
        changed[at + 18] = UInt8(ascii: "5")
        XCTAssertEqual(try PlanJSONReader.decode(changed)?.splits.flatMap(\.items).filter({ $0.width == 5 }).count, 1)
        XCTAssertThrowsError(try ShardPlan.load("plan.json", bytes: changed))
    }

    /// A folder per class of 4x3 PNGs named `names` ("sl/ash" is a file in a subfolder), planned.
    private static func plan(root: String, classes: [String], names: [String], split: String? = nil,
                             shards: Int = 3) throws -> (ShardPlan, [UInt8]) {
        var pixels = [UInt8](repeating: 0, count: 4 * 3 * 3)
        for (k, cls) in classes.enumerated() {
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
        if let split { options.split = try SplitPlan.parse(split, stratify: false, seed: 7) }
        return try Converter(options: options).makeShardPlanFile(source: .folders(root), shards: shards, balance: .images)
    }
}
