import XCTest
@testable import ImgConvCore

final class CoreTests: XCTestCase {
    func testCodePointOrder() {
        let names = ["É", "a", "B", "9", "10", "e\u{301}"]
        XCTAssertEqual(names.sorted(by: codePointLess), ["10", "9", "B", "a", "e\u{301}", "É"])
    }

    func testLumaIsPillowsFormula() {
        XCTAssertEqual(ColorConverter.luma(UInt8(255), UInt8(255), UInt8(255)), 255)
        let expected: Int = (10 * 19595 + 200 * 38470 + 30 * 7471 + 0x8000) >> 16
        XCTAssertEqual(Int(ColorConverter.luma(UInt8(10), UInt8(200), UInt8(30))), expected)
    }

    func testResizeToSameSizeIsIdentityAndWeightsSumToOne() {
        let img = PixelBuffer(width: 3, height: 2, channels: 1, depth: .eight, bytes: [0, 50, 100, 150, 200, 250])
        XCTAssertEqual(Resizer.resize(img, width: 3, height: 2).bytes, img.bytes)
        let c = Resizer.coefficients(inSize: 100, outSize: 7)
        for o in 0..<7 {
            let sum = (0..<c.count[o]).map { c.weights[o * c.taps + $0] }.reduce(0, +)
            XCTAssertEqual(sum, 1, accuracy: 1e-9)
        }
        let flat = PixelBuffer(width: 10, height: 10, channels: 1, depth: .eight, bytes: [UInt8](repeating: 77, count: 100))
        XCTAssertEqual(Resizer.resize(flat, width: 3, height: 4).bytes, [UInt8](repeating: 77, count: 12))
    }

    func testEightBitWidensByTimes257() throws {
        let plan = ImagePlan(width: 1, height: 1, channels: 1, depth: .sixteen)
        let out = try plan.conform(PixelBuffer(width: 1, height: 1, channels: 1, depth: .eight, bytes: [255]))
        XCTAssertEqual(out, [0xFF, 0xFF])
    }

    func testPipelineKeepsOrderWithManyThreads() throws {
        var seen: [Int] = []
        try runOrderedPipeline(count: 500, jobs: 4, window: 8, work: { i -> Int in
            if i % 7 == 0 { usleep(200) }
            return i * 2
        }, consume: { i, r in
            XCTAssertEqual(try r.get(), i * 2)
            seen.append(i)
        })
        XCTAssertEqual(seen, Array(0..<500))
    }

    func testPipelineStopsAtFirstConsumerError() {
        XCTAssertThrowsError(try runOrderedPipeline(count: 1000, jobs: 2, window: 4, work: { $0 }, consume: { i, _ in
            if i == 10 { throw ImgConvError(.corruptInput, path: "x", "stop") }
        }))
    }
}

final class SplitPlanTests: XCTestCase {
    func testParseAndCounts() throws {
        let plan = try SplitPlan.parse("test=10,train=80,val=10", stratify: false, seed: 1)
        XCTAssertEqual(plan.parts.map(\.name), ["train", "val", "test"])
        XCTAssertEqual(plan.counts(for: 10), [8, 1, 1])
        XCTAssertEqual(plan.counts(for: 7).reduce(0, +), 7)
        XCTAssertThrowsError(try SplitPlan.parse("train=0.5,val=0.2", stratify: false, seed: 0))
        XCTAssertThrowsError(try SplitPlan.parse("train=0.5,dev=0.5", stratify: false, seed: 0))
    }

    func testStratifiedAssignmentKeepsProportionsAndIsSeeded() throws {
        let labels = (0..<10).flatMap { c in [Int](repeating: c, count: 10 + c) }
        let plan = try SplitPlan.parse("train=0.8,val=0.1,test=0.1", stratify: true, seed: 42)
        let parts = plan.assign(labels: labels)
        for c in 0..<10 {
            let mine = labels.indices.filter { labels[$0] == c }
            let n = mine.count
            for (p, expected) in plan.counts(for: n).enumerated() {
                XCTAssertEqual(mine.filter { parts[$0] == p }.count, expected)
            }
        }
        XCTAssertEqual(plan.assign(labels: labels), parts)
        var other = plan
        other.seed = 43
        XCTAssertNotEqual(other.assign(labels: labels), parts)
    }
}
