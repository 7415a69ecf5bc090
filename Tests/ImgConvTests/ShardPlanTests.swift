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

    /// What a shard loads of a canonical plan (`loadShard`, which decodes only its range and the
    /// files it needs) is what the whole plan gives that shard, for every shard of a split and
    /// shuffled plan; the plan's files named like an output are found whichever shard holds
    /// them; a re-indented plan gives the same slices through the whole decode; a tampered one is
    /// refused before anything is read from it.
    func testShardSliceIsTheWholePlansRange() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("imgconv-plan-s-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var names = (0..<9).map { "img\($0).png" }
        names += ["part-00001-of-00004.npz", "sl/ash"]
        let (plan, bytes) = try Self.plan(root: root, classes: ["\u{3B1}", "plain", "b"], names: names,
                                          split: "train=0.7,val=0.3", shards: 4, shuffle: 11)
        let outputNames = [Array("part-00001-of-00004.npz".utf8), Array("ash.png".utf8)]
        let object = try JSONSerialization.jsonObject(with: Data(bytes))
        let indented = Array(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]))
        let compact = Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        XCTAssertNotEqual(compact, bytes)
        XCTAssertNotNil(ShardPlan.hashValueOffset(in: compact))
        for k in 0..<4 {
            let slice = try ShardPlan.loadShard("plan.json", bytes: bytes, index: k, of: 4, names: outputNames)
            let whole = ShardSlice(plan: plan, index: k, names: outputNames)
            XCTAssertEqual(slice.plan, whole.plan)
            XCTAssertEqual(slice.files, whole.files)
            XCTAssertEqual(slice.items, whole.items)
            XCTAssertEqual(slice.filesNamed.sorted(), whole.filesNamed.sorted())
            XCTAssertEqual(slice.filesNamed.count, 6)   // 3 classes x (the part's name, sl/ash.png)
            // The images and their files, against the whole plan's range.
            for (s, split) in plan.splits.enumerated() {
                let r = split.ranges[k]
                XCTAssertEqual(slice.items[s].count, r[1] - r[0])
                for (i, item) in slice.items[s].enumerated() {
                    let original = split.items[r[0] + i]
                    XCTAssertEqual(slice.files[item.file], plan.files[original.file])
                    XCTAssertEqual(item.width, original.width)
                }
            }
            let fromIndented = try ShardPlan.loadShard("plan.json", bytes: indented, index: k, of: 4, names: outputNames)
            XCTAssertEqual(fromIndented.items, whole.items)
            XCTAssertEqual(fromIndented.files, whole.files)
            // Compact with the hash where the plan has it, but not the plan's bytes (slashes
            // escaped): still the plan, through the whole decode.
            let fromCompact = try ShardPlan.loadShard("plan.json", bytes: compact, index: k, of: 4, names: outputNames)
            XCTAssertEqual(fromCompact.items, whole.items)
            XCTAssertEqual(fromCompact.filesNamed.sorted(), whole.filesNamed.sorted())
        }
        XCTAssertThrowsError(try ShardPlan.loadShard("plan.json", bytes: bytes, index: 1, of: 3, names: [])) {
            XCTAssertTrue("\($0)".contains("not 3"), "\($0)")
        }
        var changed = bytes
        let at = try XCTUnwrap(ShardPlan.firstIndex(of: Array("\"pages\":1,\"width\":4}".utf8), in: changed))
        changed[at + 18] = UInt8(ascii: "5")
        XCTAssertThrowsError(try ShardPlan.loadShard("plan.json", bytes: changed, index: 0, of: 4, names: [])) {
            XCTAssertTrue("\($0)".contains("hash"), "\($0)")
        }
    }

    /// A folder per class of 4x3 PNGs named `names` ("sl/ash" is a file in a subfolder), planned.
    private static func plan(root: String, classes: [String], names: [String], split: String? = nil,
                             shards: Int = 3, shuffle: UInt64? = nil) throws -> (ShardPlan, [UInt8]) {
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
        options.shuffleSeed = shuffle
        return try Converter(options: options).makeShardPlanFile(source: .folders(root), shards: shards, balance: .images)
    }
}
