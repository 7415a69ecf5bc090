import XCTest
import ImgConvCore
@testable import ImgConvCodecs

/// GIF and WebP through the decoder API: headers from the first bytes and through the descriptor
/// agree, frames are counted, every frame decodes the same in any order through an
/// `AnimationPool`, and limits apply from the header. Pixel equality with Pillow is judged in
/// Tests/Interop (test_fidelity.py, test_animation.py).
final class AnimationTests: XCTestCase {
    static let fixtures = DecoderTests.fixtures

    private func bytes(_ relative: String) throws -> [UInt8] { try readFile(Self.fixtures + "/" + relative) }

    func testSniffingAndDecodability() throws {
        XCTAssertEqual(ImageFormat.sniff(try bytes("gif/pillow/hopper.gif")[...]), .gif)
        XCTAssertEqual(ImageFormat.sniff(try bytes("webp/libwebp-test-data/test.webp")[...]), .webp)
        XCTAssertTrue(ImageFormat.gif.isDecodable)
        XCTAssertTrue(ImageFormat.webp.isDecodable)
    }

    func testHeadersFromMemoryAndFromTheFileAgree() throws {
        let decoders = Decoders()
        for (relative, format, frames) in [("gif/image-gif/samples/gifplayer-muybridge.gif", ImageFormat.gif, 380),
                                           ("gif/pillow/first_frame_transparency.gif", .gif, 1),
                                           ("webp/image-webp/animated/random_lossy.webp", .webp, 4),
                                           ("webp/image-webp/gallery2/1_webp_a.webp", .webp, 1)] {
            let data = try bytes(relative)
            let whole = try decoders.header(data, format: format)
            let input = try InputFile(Self.fixtures + "/" + relative)
            let prefix = try input.prefix(64)
            XCTAssertEqual(try decoders.header(prefix, of: input, format: format), whole, relative)
            XCTAssertEqual(whole.pages, frames, relative)
            XCTAssertEqual(try decoders.frameHeaders(prefix, of: input, format: format).count, frames, relative)
        }
        // Pillow composes the first frame onto the logical screen: 75x50 with alpha around the frame.
        let h = try decoders.header(try bytes("gif/pillow/first_frame_transparency.gif"), format: .gif)
        XCTAssertEqual([h.width, h.height, h.channels], [75, 50, 4])
    }

    /// Frames asked for in any order, through one pool on several threads, equal the frames
    /// decoded one by one from the start.
    func testFramesInAnyOrderThroughThePoolEqualFramesFromTheStart() throws {
        for relative in ["gif/pillow/dispose_bgnd_transparency.gif", "gif/image-rs/anim/mixed-disposal.gif",
                         "webp/image-webp/animated/random_lossless.webp"] {
            let data = try bytes(relative)
            let format = ImageFormat.sniff(data[...])!
            let plain = Decoders()
            let header = try plain.header(data, format: format)
            let reference = try (0..<header.pages).map { try plain.decode(data, format: format, header: header, page: $0).bytes }
            var options = DecodeOptions()
            options.allFrames = true
            let pooled = Decoders(options: options)
            let pool = try XCTUnwrap(pooled.animations)
            let order = SeededShuffle(seed: 3).shuffled(Array(0..<header.pages))
            let lock = NSLock()
            // Written by the concurrent iterations under `lock` only.
            nonisolated(unsafe) var got = [[UInt8]?](repeating: nil, count: header.pages)
            nonisolated(unsafe) var failure: Error?
            DispatchQueue.concurrentPerform(iterations: order.count) { i in
                let k = order[i]
                do {
                    let image: [UInt8]
                    switch pool.acquire(key: relative, frame: k) {
                    case .kept(let kept): image = kept as! [UInt8]
                    case .decode(let request):
                        request.passing = { j, passed in request.keep(passed.bytes, bytes: passed.bytes.count, frame: j) }
                        do {
                            image = try pooled.decode(data, format: format, header: header, page: k, request: request).bytes
                            request.release(delivered: true)
                        } catch {
                            request.release(delivered: false)
                            throw error
                        }
                    }
                    lock.lock(); got[k] = image; lock.unlock()
                } catch {
                    lock.lock(); failure = error; lock.unlock()
                }
            }
            XCTAssertNil(failure)
            for k in 0..<header.pages { XCTAssertEqual(got[k], reference[k], "\(relative) frame \(k)") }
        }
    }

    func testLimitsApplyBeforeAnyPixel() throws {
        var options = DecodeOptions()
        options.limits = DecodeLimits(maxPixels: 1000)
        let decoders = Decoders(options: options)
        XCTAssertThrowsError(try decoders.header(try bytes("gif/pillow/hopper.gif"), format: .gif)) { e in
            XCTAssertEqual((e as! ImgConvError).code, .limitExceeded)
        }
        XCTAssertThrowsError(try decoders.header(try bytes("webp/image-webp/animated/random_lossy.webp"), format: .webp)) { e in
            XCTAssertEqual((e as! ImgConvError).code, .limitExceeded)
        }
        // An animation's two canvases count against the bytes a decode may take.
        var small = DecodeOptions()
        small.limits = DecodeLimits(maxBytes: 99 * 87 * 4)
        XCTAssertThrowsError(try Decoders(options: small).header(try bytes("webp/image-webp/animated/random_lossy.webp"), format: .webp))
    }

    func testDamagedGIFsAreOneClearError() throws {
        let data = try bytes("gif/pillow/hopper.gif")
        for cut in [13, 100, data.count / 2] {
            XCTAssertThrowsError(try Decoders().decode(Array(data.prefix(cut)))) { e in
                XCTAssertEqual((e as! ImgConvError).code, .corruptInput, "cut at \(cut)")
            }
        }
    }

    func testWebPOrientationFromEXIFAndXMP() {
        // II*\0, IFD at 8, one entry: Orientation (0x0112), SHORT, 1, value 6.
        let tiff: [UInt8] = [0x49, 0x49, 0x2A, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(ExifOrientation.fromWebP(exif: tiff, xmp: nil), 6)
        XCTAssertEqual(ExifOrientation.fromWebP(exif: Array("Exif\0\0".utf8) + tiff, xmp: nil), 6)
        XCTAssertEqual(ExifOrientation.fromWebP(exif: nil, xmp: Array("<x tiff:Orientation=\"8\"/>".utf8)), 8)
        XCTAssertEqual(ExifOrientation.fromWebP(exif: nil, xmp: Array("<tiff:Orientation>3</tiff:Orientation>".utf8)), 3)
        // An EXIF Orientation tag wins over XMP, whatever its value; without one, XMP is read.
        XCTAssertEqual(ExifOrientation.fromWebP(exif: tiff, xmp: Array("tiff:Orientation=\"8\"".utf8)), 6)
        let noTag: [UInt8] = [0x49, 0x49, 0x2A, 0, 8, 0, 0, 0, 0, 0]
        XCTAssertEqual(ExifOrientation.fromWebP(exif: noTag, xmp: Array("tiff:Orientation=\"5\"".utf8)), 5)
        XCTAssertEqual(ExifOrientation.fromWebP(exif: nil, xmp: Array("tiff:Orientation=\"9\"".utf8)), 1)
    }
}
