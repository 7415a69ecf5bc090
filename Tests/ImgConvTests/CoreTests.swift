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
