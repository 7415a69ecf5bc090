import XCTest
import ImgConvCore
@testable import ImgConvCodecs

/// Decoder checks on the fixtures; pixel-exact comparisons with Pillow/tifffile are in Tests/Interop.
final class DecoderTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    private func decode(_ relative: String) throws -> PixelBuffer {
        try Decoders().decode(try readFile(Self.fixtures + "/" + relative)).0
    }

    func testSniffingUsesMagicBytes() throws {
        XCTAssertEqual(ImageFormat.sniff(try readFile(Self.fixtures + "/bad/image.gif")[...]), .gif)
        XCTAssertNil(ImageFormat.sniff(try readFile(Self.fixtures + "/bad/notanimage.png")[...]))
    }

    func testPNGKindsAndDepths() throws {
        let gray1 = try decode("pngsuite/basn0g01.png")
        XCTAssertEqual([gray1.width, gray1.height, gray1.channels], [32, 32, 1])
        XCTAssertEqual(Set(gray1.bytes), [0, 255])
        let rgb16 = try decode("pngsuite/basn2c16.png")
        XCTAssertEqual(rgb16.depth, .sixteen)
        XCTAssertEqual(rgb16.channels, 3)
        let paletteAlpha = try decode("pngsuite/tbbn3p08.png")
        XCTAssertEqual(paletteAlpha.channels, 4)
    }

    func testCorruptPNGIsOneClearError() {
        XCTAssertThrowsError(try decode("pngsuite/xcsn0g01.png")) { error in
            let e = error as! ImgConvError
            XCTAssertEqual(e.code, .corruptInput)
            XCTAssertTrue(e.message.hasPrefix("libpng: "), e.message)
        }
    }

    func testBombIsRefusedFromTheHeader() {
        XCTAssertThrowsError(try decode("bad/bomb.png")) { error in
            XCTAssertTrue([.limitExceeded, .corruptInput].contains((error as! ImgConvError).code))
        }
    }

    func testTruncatedJPEGIsAnError() {
        XCTAssertThrowsError(try decode("bad/truncated.jpg")) { error in
            XCTAssertTrue((error as! ImgConvError).message.contains("--allow-truncated-jpeg accepts it"))
        }
    }

    func testCMYKConversionMatchesPillowsFormula() {
        let rgb = JPEGDecoder.invertedCMYKToRGB([255, 128, 0, 255, 100, 100, 100, 0], count: 2)
        XCTAssertEqual(rgb, [255, 128, 0, 0, 0, 0])
    }
}
