// Migrating from dynamodb-atomic-counter: change the require, keep the code.
//   npm run example:node                 on an embedded local DynamoDB (dynalite), nothing to set up
//   node examples/node/migrate.cjs       against DynamoDB as configured (AWS credentials and region, or
//                                        AWS_ENDPOINT_URL_DYNAMODB); in this repository `npm run build` first
//
// before: const atomicCounter = require("dynamodb-atomic-counter");   (AWS SDK v2, Node only)
const atomicCounter = require("dynacount/compat");
const { CounterClient } = require("dynacount");
const _ = require("underscore.deferred"); // the old package's users mixed it into underscore: _.mixin(...)

async function main() {
  const tableName = process.env.TABLE_NAME || "AtomicCounters";
  await new CounterClient({ tableName }).createTable(); // the old library expected you to create it

  // Exactly as with the old package: options object callbacks, context as `this`, deferred-style methods.
  const report = { ids: [] };
  const options = {
    tableName,
    context: report,
    success(value) {
      this.ids.push(value);
    },
  };
  for (let i = 0; i < 3; i++) await atomicCounter.increment("users", options);

  const last = await new Promise((resolve) => atomicCounter.getLastValue("users", { tableName }).done(resolve));
  const zero = await atomicCounter.increment("users", { tableName, increment: 0 }); // the old package added 1 here
  const failed = await new Promise(
    (resolve) => atomicCounter.getLastValue("users", { tableName: "NoSuchTable" }).fail((error) => resolve(error.code)), // the old package swallowed this
  );
  // Ten at once, combined with _.when as the old README did: it hands the ten numbers to done.
  const promises = [];
  for (let i = 0; i < 10; i++) promises.push(atomicCounter.increment("clients", { tableName }));
  const clients = await new Promise((resolve, reject) =>
    _.when(promises)
      .done((...ids) => resolve(ids))
      .fail(reject),
  );
  console.log(
    `user ids ${report.ids.join(", ")}; last value ${last}; increment 0 → ${zero}; missing table → ${failed}; 10 at once → ${clients.join(", ")}`,
  );
  console.log(JSON.stringify({ runtime: `node ${process.version}`, ids: report.ids, last, zero, failed, clients }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
