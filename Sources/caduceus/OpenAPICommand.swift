import ArgumentParser
import ControlPlaneHTTP

/// `caduceus openapi`: the API's OpenAPI 3.1 document (the checked-in `openapi/caduceus-v1.json`).
struct OpenAPICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openapi", abstract: "Print the API's OpenAPI 3.1 document.")

    func run() async throws {
        StandardStreams.write(try OpenAPIDocument.json())
    }
}
