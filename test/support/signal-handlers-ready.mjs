// Preloaded (`node --import`) by the shutdown e2e test into the real process: says on stdout
// when the app has put its SIGTERM handler in place, so the test signals the process while it
// is still loading (Nest not imported yet) without guessing how long Node takes to get there.
const on = process.on.bind(process);
process.on = (event, listener) => {
  on(event, listener);
  if (event === 'SIGTERM') process.stdout.write('test: SIGTERM handler in place\n');
  return process;
};
