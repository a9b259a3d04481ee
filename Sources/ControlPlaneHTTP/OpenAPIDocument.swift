import AuditLog
import CaduceusCore
import ControlPlane
import Foundation
import HTTPTypes
import Identity

/// The OpenAPI 3.1 description of the API, built from the route table so that it cannot miss a route.
/// The checked-in copy (`openapi/caduceus-v1.json`) is compared with it by the tests.
public enum OpenAPIDocument {
    /// The document as canonical JSON (sorted keys, two-space indentation, final newline).
    public static func json() throws -> [UInt8] {
        var paths: [String: [String: Any]] = [:]
        for route in APIRoutes.all + APIRoutes.agentListener {
            var operation: [String: Any] = [
                "summary": route.summary,
                "operationId": operationID(route),
                "responses": responses(route),
            ]
            switch route.access {
            case .open: operation["security"] = [[String: Any]]()
            case .authenticated: operation["x-caduceus-access"] = "authenticated"
            case .permission(let permission): operation["x-caduceus-permission"] = permission.rawValue
            case .nodeCertificate:
                operation["security"] = [["nodeCertificate": [String]()]]
                operation["servers"] = [["url": "https://localhost:8444", "description": "the agent listener"]]
            }
            var parameters: [[String: Any]] = []
            if route.path.contains("{id}") {
                parameters.append(["name": "id", "in": "path", "required": true, "schema": ["type": "string"]])
            }
            for name in ["job", "name", "object"] where route.path.contains("{\(name)}") {
                parameters.append(["name": name, "in": "path", "required": true, "schema": ["type": "string"]])
            }
            if route.method == .get && route.path.hasPrefix("/v1/") && !route.path.contains("{")
                && route.access != .authenticated || route.path == "/v1/break-glass" && route.method == .get
            {
                if route.path != "/v1/me" && route.path != "/v1/openapi.json" {
                    parameters.append(["name": "after", "in": "query", "schema": ["type": "string"]])
                    parameters.append([
                        "name": "limit", "in": "query", "schema": ["type": "integer", "minimum": 1, "maximum": 500],
                    ])
                }
            }
            for filter in route.filters {
                parameters.append(["name": filter, "in": "query", "schema": ["type": "string"]])
            }
            if route.method == .post && route.access != .open && route.access != .nodeCertificate {
                parameters.append([
                    "name": "Idempotency-Key", "in": "header", "schema": ["type": "string", "maxLength": 128],
                ])
            }
            if !parameters.isEmpty { operation["parameters"] = parameters }
            if let body = route.body {
                let schema = body.schema
                var object: [String: Any] = [
                    "type": "object",
                    "additionalProperties": false,
                    "properties": schema.mapValues(property),
                ]
                let required = schema.filter(\.value.required).keys.sorted()
                if !required.isEmpty { object["required"] = required }
                operation["requestBody"] = ["required": true, "content": ["application/json": ["schema": object]]]
            }
            paths[route.path, default: [:]][route.method.rawValue.lowercased()] = operation
        }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": [
                "title": "Caduceus control plane API",
                "version": "1",
                "description": "Every request is authenticated (bearer token), authorised against roles, and audited.",
            ],
            "servers": [["url": "https://localhost:8443"]],
            "paths": paths,
            "components": [
                "securitySchemes": [
                    "bearer": ["type": "http", "scheme": "bearer"],
                    "nodeCertificate": [
                        "type": "mutualTLS",
                        "description": "The client certificate the internal CA issued to the node at enrolment.",
                    ],
                ],
                "schemas": [
                    "Error": [
                        "type": "object",
                        "required": ["error"],
                        "properties": [
                            "error": [
                                "type": "object",
                                "required": ["code", "message"],
                                "properties": [
                                    "code": ["type": "string"], "message": ["type": "string"],
                                    "requestId": ["type": "string"],
                                ],
                            ]
                        ],
                    ]
                ],
            ],
            "security": [["bearer": [String]()]],
        ]
        var data = try JSONSerialization.data(
            withJSONObject: document, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        data.append(0x0A)
        return Array(data)
    }

    /// A request field's JSON schema.
    static func property(_ field: FieldSpec) -> [String: Any] {
        var property: [String: Any] = ["type": field.type]
        if let items = field.items {
            property[field.type == "array" ? "items" : "additionalProperties"] = ["type": items]
        }
        return property
    }

    static func operationID(_ route: RouteSpec) -> String {
        let words = route.path.split(separator: "/").filter { $0 != "v1" }.map {
            $0 == "{id}" ? "ById" : $0.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        }
        return route.method.rawValue.lowercased() + words.joined().replacingOccurrences(of: ".", with: "")
    }

    static func responses(_ route: RouteSpec) -> [String: Any] {
        let error: [String: Any] = [
            "description": "Error", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]],
        ]
        // POST creates (201), except an action on an existing resource (`…/{id}/verb`, 200).
        let success =
            route.method == .delete || route.path.hasSuffix("/password")
            ? "204" : (route.method == .post && !route.path.contains("{id}/") ? "201" : "200")
        var responses: [String: Any] = [success: ["description": "Success"], "400": error, "503": error]
        if route.path == "/v1/jobs" && route.method == .post { responses["422"] = error }
        if route.path.hasPrefix("/v1/nodes/{id}/") || route.path == "/v1/jobs/{id}/cancel" { responses["409"] = error }
        if route.access != .open {
            responses["401"] = error
            responses["403"] = error
        }
        if route.path.contains("{id}") { responses["404"] = error }
        if route.path == "/v1/sessions" { responses["401"] = error; responses["429"] = error }
        return responses
    }
}
