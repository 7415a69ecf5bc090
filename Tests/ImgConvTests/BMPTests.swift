import XCTest
import ImgConvCore
@testable import ImgConvCodecs

/// The BMP reader on hand-made files; every fixture against Pillow is in
/// Tests/Interop/test_fidelity.py, synthetic files against Pillow in Tests/Interop/test_bmp.py.
final class BMPTests: XCTestCase {
    static let fixtures = DecoderTests.fixtures + "/bmp"

    /// A BMP: file header, a 40-byte (or `headerSize`) info header, the masks (after a 40-byte
    /// header, inside a longer one), the palette (RGB entries written BGR0), the pixel data.
    private func bmp(width: Int, height: Int, bits: Int, compression: Int = 0, headerSize: Int = 40,
                     masks: [Int] = [], palette: [[UInt8]] = [], pixels: [UInt8]) -> [UInt8] {
        func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func le16(_ v: Int) -> [UInt8] { (0..<2).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        var info = le32(headerSize) + le32(width) + le32(height) + le16(1) + le16(bits) + le32(compression)
        info += le32(pixels.count) + le32(0) + le32(0) + le32(palette.count) + le32(0)
        let maskBytes = masks.flatMap(le32)
        if headerSize > 40 { info += maskBytes }
        info += [UInt8](repeating: 0, count: max(0, headerSize - info.count))
        let extra = headerSize == 40 ? maskBytes : []
        let table: [UInt8] = palette.flatMap { [$0[2], $0[1], $0[0], 0] }
        let body = info + extra + table + pixels
        return Array("BM".utf8) + le32(14 + body.count) + le32(0) + le32(14 + body.count - pixels.count) + body
    }

    private func decode(_ data: [UInt8], limits: DecodeLimits = DecodeLimits()) throws -> PixelBuffer {
        let decoder = BMPDecoder(limits: limits)
        return try decoder.decode(data, header: try decoder.readHeader(data))
    }

    private func code(_ body: () throws -> Void) -> ImgConvError.Code? {
        do { try body() } catch let e as ImgConvError { return e.code } catch { return .internal }
        return nil
    }

    func testPaletteRowsAndPadding() throws {
        // 3x2, 8-bit, bottom-up: the first stored row is the bottom one; rows padded to 4 bytes.
        let data = bmp(width: 3, height: 2, bits: 8, palette: [[10, 20, 30], [40, 50, 60]],
                       pixels: [1, 0, 7, 0xEE, 0, 1, 1])
        let image = try decode(data)
        XCTAssertEqual([image.width, image.height, image.channels], [3, 2, 3])
        XCTAssertEqual(image.bytes, [10, 20, 30, 40, 50, 60, 40, 50, 60,
                                     40, 50, 60, 10, 20, 30, 0, 0, 0])  // index 7: past the palette, black
    }

    func testGrayPalettesGiveOneChannel() throws {
        let bilevel = try decode(bmp(width: 8, height: 1, bits: 1, palette: [[0, 0, 0], [255, 255, 255]], pixels: [0xA5, 0, 0, 0]))
        XCTAssertEqual(bilevel.channels, 1)
        XCTAssertEqual(bilevel.bytes, [255, 0, 255, 0, 0, 255, 0, 255])
        // A 4-bit identity ramp: Pillow reads the bytes as 8-bit gray; imgconv reads the indices.
        let ramp = try decode(bmp(width: 3, height: 1, bits: 4, palette: (0..<16).map { [UInt8($0), UInt8($0), UInt8($0)] },
                                  pixels: [0x1F, 0x70, 0, 0]))
        XCTAssertEqual(ramp.channels, 1)
        XCTAssertEqual(ramp.bytes, [1, 15, 7])
    }

    func testRLE8RunsDeltaAbsoluteAndEnd() throws {
        // 4x3, bottom-up; the palette's red is the index. Bottom row: a run of 3 x index 1, end of
        // line (index 0 to the row's end); a delta of 1 right, 1 up skips the middle row; then an
        // absolute run of 3 indices fills the top row from column 1, completing the image.
        let palette: [[UInt8]] = [[0, 0, 0], [1, 1, 255], [2, 2, 2], [3, 3, 3]]
        let stream: [UInt8] = [3, 1, 0, 0, 0, 2, 1, 1, 0, 3, 2, 3, 1, 0, 0, 1]
        let image = try decode(bmp(width: 4, height: 3, bits: 8, compression: 1, palette: palette, pixels: stream))
        XCTAssertEqual(image.channels, 3)
        let red = image.bytes.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
        XCTAssertEqual(red, [0, 2, 3, 1,   // top row
                             0, 0, 0, 0,   // skipped by the delta: index 0
                             1, 1, 1, 0])  // bottom row
        // The end of the bitmap before the last pixel: refused (Pillow: "not enough image data").
        let short = bmp(width: 4, height: 3, bits: 8, compression: 1, palette: palette, pixels: [3, 1, 0, 0, 0, 1])
        XCTAssertEqual(code { _ = try decode(short) }, .corruptInput)
    }

    func testRLE4NibblesAlternate() throws {
        // 5x2: a run of 5 alternating 1, 2; end of line; an absolute run of 3 (3, 4, 5); end of line.
        let stream: [UInt8] = [5, 0x12, 0, 0, 0, 3, 0x34, 0x50, 0, 0, 0, 1]
        let image = try decode(bmp(width: 5, height: 2, bits: 4, compression: 2,
                                   palette: (0..<16).map { [UInt8($0 * 10), 0, 0] }, pixels: stream))
        let red = image.bytes.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
        XCTAssertEqual(red, [30, 40, 50, 0, 0,   // top row
                             10, 20, 10, 20, 10])
    }

    func testBitFieldsScaleAsPillow() throws {
        // 16-bit 4-4-4-4 in a 56-byte header (Pillow refuses the layout): 4-bit fields x17, the
        // alpha mask ignored as Pillow ignores it for 1-5-5-5.
        let image = try decode(bmp(width: 1, height: 1, bits: 16, compression: 3, headerSize: 56,
                                   masks: [0x0F00, 0x00F0, 0x000F, 0xF000], pixels: [0x5A, 0x03, 0, 0]))
        XCTAssertEqual(image.channels, 3)
        XCTAssertEqual(image.bytes, [3 * 17, 5 * 17, 10 * 17])
        // 32-bit 2-10-10-10 with ALPHABITFIELDS: 10-bit fields v * 255 / 1023 rounded down,
        // the 2-bit alpha x85.
        let p = 2 << 30 | 1023 << 20 | 512 << 10 | 3
        let alpha = try decode(bmp(width: 1, height: 1, bits: 32, compression: 6,
                                   masks: [0x3FF0_0000, 0x000F_FC00, 0x0000_03FF, 0xC000_0000],
                                   pixels: (0..<4).map { UInt8(truncatingIfNeeded: p >> (8 * $0)) }))
        XCTAssertEqual(alpha.channels, 4)
        XCTAssertEqual(alpha.bytes, [255, 127, 0, 170])
    }

    func testBadMasksAndFieldsAreRefused() {
        let split = bmp(width: 1, height: 1, bits: 32, compression: 3, masks: [0xF0F0, 0xFF0000, 0xFF], pixels: [0, 0, 0, 0])
        XCTAssertEqual(code { _ = try decode(split) }, .corruptInput)
        let overlap = bmp(width: 1, height: 1, bits: 16, compression: 3, masks: [0xF800, 0xFFE0, 0x1F], pixels: [0, 0, 0, 0])
        XCTAssertEqual(code { _ = try decode(overlap) }, .corruptInput)
        let twoBit = bmp(width: 4, height: 1, bits: 2, palette: [[0, 0, 0], [9, 9, 9]], pixels: [0, 0, 0, 0])
        XCTAssertEqual(code { _ = try decode(twoBit) }, .unsupported)
        let jpeg = bmp(width: 1, height: 1, bits: 24, compression: 4, pixels: [0xFF, 0xD8, 0xFF, 0])
        XCTAssertEqual(code { _ = try decode(jpeg) }, .unsupported)
        var planes = bmp(width: 1, height: 1, bits: 24, pixels: [1, 2, 3, 0])
        planes[26] = 2
        XCTAssertEqual(code { _ = try decode(planes) }, .corruptInput)
        let shortPixels = bmp(width: 4, height: 4, bits: 24, pixels: [UInt8](repeating: 7, count: 16 * 3 - 1))
        XCTAssertEqual(code { _ = try decode(shortPixels) }, .corruptInput)
        let bigPalette = bmp(width: 1, height: 1, bits: 8, palette: (0..<300).map { [UInt8($0 % 256), 1, 2] }, pixels: [0, 0, 0, 0])
        XCTAssertEqual(code { _ = try decode(bigPalette) }, .corruptInput)
    }

    func testSizesAreCheckedBeforeAnyAllocation() throws {
        // 100000 x 100000 over 4 bytes: refused from the header by the limits.
        let bomb = bmp(width: 100_000, height: 100_000, bits: 24, pixels: [0, 0, 0, 0])
        XCTAssertEqual(code { _ = try BMPDecoder().readHeader(bomb) }, .limitExceeded)
        // Within the limits, the pixel data must be in the file before the image is allocated.
        let limits = DecodeLimits(maxPixels: 1 << 22, maxBytes: 256 << 20)
        let short = bmp(width: 2000, height: 2000, bits: 32, pixels: [0, 0, 0, 0])
        XCTAssertEqual(code { _ = try decode(short, limits: limits) }, .corruptInput)
        // An RLE stream too short to reach the last row (a byte yields at most 64 * (w + 1) pixels).
        let rle = bmp(width: 1, height: 100_000, bits: 8, compression: 1, palette: [[0, 0, 0]], pixels: [0, 1])
        XCTAssertEqual(code { _ = try decode(rle, limits: limits) }, .corruptInput)
    }

    func testBareDIBAndDIBNames() throws {
        let file = bmp(width: 2, height: 1, bits: 24, pixels: [1, 2, 3, 4, 5, 6, 0, 0])
        let bare = Array(file[14...])
        XCTAssertEqual(ImageFormat.sniff(bare[...]), .bmp)
        let image = try decode(bare)
        XCTAssertEqual(image.bytes, [3, 2, 1, 6, 5, 4])
        XCTAssertNil(ImageFormat.sniff([0x28, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 24, 0, 0, 0, 0, 0][...]), "2 planes")
        XCTAssertNil(ImageFormat.sniff(Array("(not an image, just text)".utf8)[...]))
    }

    /// The header pass reads the first 16 KiB: the header from them is the whole file's.
    func testHeaderFromThePrefixIsTheFilesHeader() throws {
        let files = FileManager.default.enumerator(atPath: Self.fixtures)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".bmp") }
        XCTAssertEqual(files.count, 68)
        for name in files {
            let data = try readFile(Self.fixtures + "/" + name)
            let whole = try BMPDecoder().readHeader(data)
            XCTAssertEqual(try BMPDecoder().readHeader(Array(data.prefix(HeaderPass.prefixBytes))), whole, name)
            XCTAssertEqual(ImageFormat.sniff(data[...]), .bmp, name)
        }
    }
}
