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

    /// A file to be read whole comes back whole and unchanged whether it is read in one piece
    /// (up to `HeaderPass.wholeReadBytes`) or in two (its first `prefixBytes`, then the rest),
    /// and decodes the same; without `readWhole` nothing past the header is kept.
    func testHeaderPassReadsAFileWholeInOneOrTwoPieces() throws {
        let dir = NSTemporaryDirectory() + "/imgconv-wholeread-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let png = try readFile(Self.fixtures + "/pngsuite/basn2c16.png")
        let pass = HeaderPass(decoders: Decoders(), tiffPages: .first)
        let expected = try Decoders().decode(png).0
        // Bytes after IEND, which PNG readers ignore, make the sizes: below the prefix, between
        // it and the one-piece limit, at the limit, past it.
        for size in [png.count, HeaderPass.prefixBytes + 1, HeaderPass.wholeReadBytes, HeaderPass.wholeReadBytes + 1] {
            let bytes = png + (0..<(size - png.count)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let path = "\(dir)/\(size).png"
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
            let file = SourceFile(relativePath: "\(size).png", path: path, label: 0)
            let (probe, whole, reading) = pass.load(file, readWhole: true)
            guard case .images(let found, _) = probe, let whole else { return XCTFail("\(size): \(probe)") }
            XCTAssertEqual(whole, bytes, "\(size) bytes")
            let image = try Decoders().decode(whole, format: .png, header: found[0].header, reading: reading)
            XCTAssertEqual(image.bytes, expected.bytes, "\(size) bytes")
            XCTAssertNil(pass.load(file, readWhole: false).bytes)
            let input = try InputFile(path)
            XCTAssertEqual(try input.prefix(10), Array(bytes[0..<10]))
            XCTAssertEqual(try input.prefix(size + 5), bytes)
        }
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

    func testAVIFAndHEIFHeadersKindsAndLimits() throws {
        // AVIF: irot/imir become the EXIF orientation (as Pillow reports them); stored size in the header.
        let kimono = try readFile(Self.fixtures + "/avif/av1-avif/link-u/kimono.rotate90.avif")
        let h = try Decoders().header(kimono, format: .avif)
        XCTAssertEqual([h.width, h.height, h.channels, h.orientation], [1024, 722, 3, 6])
        XCTAssertEqual(h.depth, .eight)
        let upright = try decode("avif/av1-avif/link-u/kimono.rotate90.avif")
        XCTAssertEqual([upright.width, upright.height], [722, 1024])
        // HEIF: libheif applies the transforms; gray stays one channel, 10-bit is uint16 (top bits).
        let gray10 = try decode("heic/pillow-heif/heif/L_10__29x100.heif")
        XCTAssertEqual([gray10.width, gray10.height, gray10.channels], [29, 100, 1])
        XCTAssertEqual(gray10.depth, .sixteen)
        let samples = gray10.bytes.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
        XCTAssertTrue(samples.allSatisfy { $0 & 0x3F == 0 })
        let la = try decode("heic/pillow-heif/heif/LA_8__128x128.heif")
        XCTAssertEqual(la.channels, 4)
        // --dtype uint8 narrows 10/12-bit colour in the decoder.
        var narrow = DecodeOptions()
        narrow.narrowHighDepth = true
        let rgb10 = try readFile(Self.fixtures + "/heic/pillow-heif/heif/RGB_10__128x128.heif")
        XCTAssertEqual(try Decoders(options: narrow).header(rgb10, format: .heif).depth, .eight)
        XCTAssertEqual(try Decoders().header(rgb10, format: .heif).depth, .sixteen)
        // The limits are checked on the container's size, before any pixel is decoded.
        var small = DecodeOptions()
        small.limits = DecodeLimits(maxPixels: 1000)
        for (path, format) in [("heic/pillow-heif/heif/RGB_8__128x128.heif", ImageFormat.heif),
                               ("avif/libavif/kodim03_yuv420_8bpc.avif", .avif)] {
            XCTAssertThrowsError(try Decoders(options: small).header(try readFile(Self.fixtures + "/" + path), format: format)) {
                XCTAssertEqual(($0 as! ImgConvError).code, .limitExceeded, path)
            }
        }
        // A cut file is one clear error from the library.
        XCTAssertThrowsError(try Decoders().decode(Array(kimono.prefix(2000)))) { error in
            let e = error as! ImgConvError
            XCTAssertEqual(e.code, .corruptInput)
            XCTAssertTrue(e.message.hasPrefix("libavif: "), e.message)
        }
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
