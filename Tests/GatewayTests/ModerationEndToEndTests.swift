import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// `POST /v1/moderate` through the real `moderation` ensemble (`TRITON_MODERATION_URL`,
/// the production repository).
@Suite(.enabled(if: Environment.moderationURL != nil, "needs TRITON_MODERATION_URL (scripts/test starts it)"), .serialized)
struct ModerationEndToEndTests {
    static var sampleImages: [URL] {
        let folder = Environment.projectRoot.appendingPathComponent("Tests/Fixtures/images")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { ["jpg", "jpeg", "png", "webp", "gif", "bmp"].contains(($0 as NSString).pathExtension.lowercased()) }
            .sorted().map { folder.appendingPathComponent($0) }
    }

    static func mediaType(_ url: URL) -> String {
        switch url.pathExtension.lowercased() {
        case "jpg", "jpeg": return "image/jpeg"
        default: return "image/\(url.pathExtension.lowercased())"
        }
    }

    func withGateway(_ body: @Sendable (any TestClientProtocol, TestSetup) async throws -> Void) async throws {
        let setup = try TestSetup()
        let overrides = [
            "timeouts": "timeouts:\n  connect: 2\n  request: 30\n  upstream_deadline: 60\n",
            "limits": "limits:\n  max_body_bytes: 8388608\n  max_image_pixels: 40000000\n  max_concurrent_upstream: 16\n",
        ]
        try await withLiveGateway(setup, tritonURL: Environment.moderationURL ?? "", model: "moderation", overrides: overrides) { client, _ in
            try await body(client, setup)
        }
    }

    @Test func moderatesEverySampleImageRawAndAsJSON() async throws {
        let images = Self.sampleImages
        try #require(!images.isEmpty, "no sample images in Tests/Fixtures/images")
        try await withGateway { client, setup in
            let token = try setup.token(roles: ["client"])
            for image in images {
                let bytes = [UInt8](try Data(contentsOf: image))
                let raw = try await client.execute(
                    uri: "/v1/moderate", method: .post,
                    headers: fields([(.authorization, "Bearer \(token)"), (.contentType, Self.mediaType(image))]), body: ByteBuffer(bytes: bytes))
                #expect(raw.status == .ok, "\(image.lastPathComponent): \(raw.text)")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: raw.body)) as? [String: Any])
                #expect(["allow", "review", "block"].contains(object["decision"] as? String ?? ""), "\(image.lastPathComponent)")
                #expect(object["reasons"] is [Any])
                #expect(object["scores"] is [String: Any])
                #expect(object["text"] is String)
                // The evidence of the pipeline: orientation, text classifier, OCR counts.
                let evidence = object["evidence"] as? [String: Any]
                #expect([0, 90, 180, 270].contains(evidence?["orientation"] as? Int ?? -1), "\(image.lastPathComponent)")
                #expect(evidence?["text_classifier"] is [String: Any])
                #expect(evidence?["matches"] is [Any])
                #expect((evidence?["ocr"] as? [String: Any])?["capped"] is Bool)
                #expect((object["model"] as? [String: Any])?["name"] as? String == "moderation")
                #expect(object["request_id"] as? String == raw.headers[.requestIDHeader])

                let json = try await client.execute(
                    uri: "/v1/moderate", method: .post,
                    headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "application/json")]),
                    body: ByteBuffer(string: "{\"image\":\"\(Data(bytes).base64EncodedString())\"}"))
                #expect(json.status == .ok)
                let again = try JSONSerialization.jsonObject(with: Data(buffer: json.body)) as? [String: Any]
                #expect(again?["decision"] as? String == object["decision"] as? String, "same image, same decision")
            }
        }
    }

    @Test("each labelled image gets its expected decision and first OCR reason through the gateway")
    func labelledImagesGetTheirDecision() async throws {
        // Rendered at test time by the script the ensemble tests render with (no image in git).
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("moderation-images-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = Environment.projectRoot.appendingPathComponent("Tests/Fixtures/moderation_images.py").path
        let (status, output) = try await runProcess(Environment.python, [script, folder.path])
        try #require(status == 0, "moderation_images.py failed: \(output)")
        let labels = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("labels.json"))) as? [[String: Any]])
        let cases: [(URL, String, String?)] = labels.compactMap { label in
            guard let file = label["file"] as? String, let decision = label["decision"] as? String else { return nil }
            return (folder.appendingPathComponent(file), decision, label["code"] as? String)
        }
        try #require(cases.count == labels.count && cases.count >= 5, "\(labels)")
        #expect(Set(cases.map(\.1)) == ["allow", "review", "block"], "the set covers every decision")
        // The shipped sample photos hold no text and nothing unsafe.
        let all = cases + Self.sampleImages.map { ($0, "allow", nil) }
        try await withGateway { client, setup in
            let token = try setup.token(roles: ["client"])
            for (image, decision, code) in all {
                let response = try await client.execute(
                    uri: "/v1/moderate", method: .post,
                    headers: fields([(.authorization, "Bearer \(token)"), (.contentType, Self.mediaType(image))]),
                    body: ByteBuffer(bytes: [UInt8](try Data(contentsOf: image))))
                #expect(response.status == .ok, "\(image.lastPathComponent): \(response.text)")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
                #expect(object["decision"] as? String == decision, "\(image.lastPathComponent): \(response.text)")
                let reasons = (object["reasons"] as? [[String: Any]]) ?? []
                let firstOCR = reasons.first { $0["source"] as? String == "ocr" }?["code"] as? String
                #expect(firstOCR == code, "\(image.lastPathComponent): \(reasons)")
            }
        }
    }

    @Test func undecodableImageIs422FromThePreprocessRefusal() async throws {
        try await withGateway { client, setup in
            let token = try setup.token(roles: ["client"])
            // A real JPEG header (so the gateway's checks pass) followed by garbage.
            var bytes = Array([UInt8](try Data(contentsOf: Self.sampleImages.first { $0.pathExtension == "jpg" } ?? Self.sampleImages[0])).prefix(600))
            bytes += [UInt8](repeating: 0x00, count: 64)
            let response = try await client.execute(
                uri: "/v1/moderate", method: .post, headers: fields([(.authorization, "Bearer \(token)"), (.contentType, "image/jpeg")]),
                body: ByteBuffer(bytes: bytes))
            #expect(response.status == .unprocessableContent, "\(response.text)")
            #expect(response.headers[.contentType] == "application/problem+json")
            #expect(!response.text.contains("ensemble"))
        }
    }
}
