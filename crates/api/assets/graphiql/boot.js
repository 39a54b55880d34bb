// Starts GraphiQL on this server's /graphql: queries and mutations over HTTP,
// subscriptions over graphql-transport-ws at the same path (wss:// when the page
// came over https://, ws:// otherwise). A link can open the page with an
// operation in the editor: /graphql#query=…&variables=…, in the fragment, which
// the browser keeps to itself (a query string would make /graphql run the query;
// never headers: a token in a URL ends up in browser histories).
//
// It is a file rather than an inline script so that the page's
// Content-Security-Policy can refuse every inline script.
(function () {
  'use strict';
  var endpoint = new URL('/graphql', window.location.href);
  var subscriptions = new URL(endpoint.href);
  subscriptions.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';
  var parameters = new URLSearchParams(window.location.hash.slice(1));
  var props = {
    fetcher: GraphiQL.createFetcher({ url: endpoint.href, subscriptionUrl: subscriptions.href }),
    defaultEditorToolsVisibility: true,
  };
  if (parameters.has('query')) {
    props.query = parameters.get('query');
  }
  if (parameters.has('variables')) {
    props.variables = parameters.get('variables');
  }
  ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, props));
})();
