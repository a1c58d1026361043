"""The service's own documentation: the OpenAPI document (``/docs.json``) and the Swagger page (``/``).

BentoML's versions describe BentoML: its page loads Google Tag Manager and badge images from other sites, links to
BentoML's project and shows version "None"; its document lists neither the bearer key nor the 401, 413 and 503 answers
that :mod:`earful.serving.guard` gives. The guard serves these instead. The page uses only the Swagger UI files BentoML
serves locally (``/static_content/``) and turns off Swagger UI's online validator badge, so it loads nothing from
outside.
"""

from __future__ import annotations

import html
import json

from earful.serving.api import ClassifyResponse

__all__ = ["openapi_document", "swagger_page"]

DESCRIPTION = (
    "Complaint type, sentiment, language and troll likelihood for each social post. "
    '`POST /classify` with `{"posts": [{"text": "..."}]}`. When the service has an API key, every path but '
    "the health probes needs `Authorization: Bearer <key>`."
)
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string", "description": "What is wrong, and where."}},
    "required": ["error"],
}
TAGS = {"Service APIs": "Classify posts.", "Infrastructure": "Health probes and Prometheus metrics."}
#: The answers the guard adds, with what each means for a client.
ERROR_RESPONSES = {
    "400": "The body is not a valid request; the error names the field.",
    "401": "Missing or wrong API key (only when the service has one).",
    "413": "Too many posts, or a post too long; the error names the limit.",
    "503": "Overloaded: retry after the Retry-After header's seconds.",
}


def openapi_document(spec: dict, version: str, model: dict) -> dict:
    """BentoML's OpenAPI document, describing earful: its name and version, the response envelope of /classify,
    the bearer scheme and the error answers."""
    spec["info"] = {
        "title": "earful",
        "version": version,
        "description": f"{DESCRIPTION}\n\nModel: {model['name']} {model['version']}.",
    }
    schema = ClassifyResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(schema.pop("$defs", {}))
    schemas["ClassifyResponse"] = schema
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The service's API key (EARFUL_API_KEY or --api-key-file).",
        }
    }
    for tag in spec.get("tags", []):
        tag["description"] = TAGS.get(tag.get("name"), tag.get("description", ""))
    op = spec.get("paths", {}).get("/classify", {}).get("post", {})
    responses = op.setdefault("responses", {})
    responses.setdefault("200", {}).setdefault("content", {})["application/json"] = {
        "schema": {"$ref": "#/components/schemas/ClassifyResponse"}
    }
    for status, meaning in ERROR_RESPONSES.items():
        responses[status] = {
            "description": meaning,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    responses["503"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
    op["security"] = [{"bearer": []}, {}]
    return spec


def swagger_page(version: str) -> bytes:
    """The API page: Swagger UI from the service's own static files, nothing from other sites."""
    title = html.escape(f"earful {version}")
    config = json.dumps({"url": "./docs.json", "dom_id": "#swagger-ui", "deepLinking": True, "validatorUrl": None})
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>{title}</title>
  <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script>window.ui = SwaggerUIBundle({config});</script>
</body>
</html>
""".encode()
