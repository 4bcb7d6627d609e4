// The browsable API reference: Swagger UI over the document the server generates.
window.addEventListener('DOMContentLoaded', () => {
  window.ui = window.SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    docExpansion: 'none',
    defaultModelsExpandDepth: 0,
    // Never send the document to an outside validator.
    validatorUrl: null,
  });
});
