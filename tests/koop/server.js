// Koop (open-source ArcGIS FeatureServer API) serving GeoJSON files, for twin's tests.
// Usage: node server.js PORT DATA_DIR  (DATA_DIR relative to the working directory or absolute).
// A file DATA_DIR/NAME.geojson is served at
//   http://127.0.0.1:PORT/file-geojson/rest/services/NAME/FeatureServer/0
// and its top-level "metadata" member (e.g. {"maxRecordCount": 10}) sets the layer's metadata.
const path = require('path');
const Koop = require('@koopjs/koop-core');
const provider = require('@koopjs/provider-file-geojson');

const port = Number(process.argv[2]);
const dataDir = path.relative(process.cwd(), path.resolve(process.argv[3] || 'data'));
const koop = new Koop({ logLevel: 'error' });
koop.register(provider, { dataDir });
koop.server.listen(port, '127.0.0.1', () => console.log(`koop listening on 127.0.0.1:${port}`));
