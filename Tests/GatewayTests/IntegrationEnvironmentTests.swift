import Foundation
import Testing

/// The gateway's end-to-end suites need the Triton instances that `scripts/test` starts;
/// without them they are disabled, which a plain `swift test` would report only as quiet
/// skips. This test turns that into a failure that says what to do.
@Suite struct GatewayIntegrationEnvironmentTests {
    static let variables = ["TRITON_URL", "TRITON_MODERATION_URL"]

    @Test(.disabled(if: ProcessInfo.processInfo.environment["SKIP_INTEGRATION"] == "1",
                    "SKIP_INTEGRATION=1: unit tests only, the end-to-end suites were skipped on request"))
    func endToEndSuitesHaveTheirTriton() {
        let environment = ProcessInfo.processInfo.environment
        let missing = Self.variables.filter { (environment[$0] ?? "").isEmpty }
        #expect(missing.isEmpty, """
            The gateway's end-to-end suites did not run: \(missing.joined(separator: ", ")) not set. \
            Run ./scripts/test (it starts the test Tritons and sets these), or set SKIP_INTEGRATION=1 \
            to run the unit tests alone.
            """)
    }
}
