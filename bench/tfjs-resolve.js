// Node module hook for tfjs-core's ES module build, whose relative imports omit the `.js`
// extension (`./gradients/Abs_grad`) and which Node cannot resolve as written. Only the modules
// that register gradients and chained tensor methods are loaded from that build: the CommonJS
// bundle that `@tensorflow/tfjs-core` resolves to under Node (4.22.0) has neither. Both builds
// keep their registries, their engine and the Tensor class on one global object, so what one
// registers the other finds.
export async function resolve(specifier, context, nextResolve) {
  const fromTfjsCore = context.parentURL?.includes('/node_modules/@tensorflow/tfjs-core/dist/') ?? false;
  if (fromTfjsCore && specifier.startsWith('.') && !/\.[cm]?js$/.test(specifier)) {
    return nextResolve(`${specifier}.js`, context);
  }
  return nextResolve(specifier, context);
}
