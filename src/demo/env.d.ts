/// <reference lib="dom" />

declare module '*.vue' {
  import type { DefineComponent } from 'vue';

  const component: DefineComponent;
  export default component;
}

/** Vite bundles imported stylesheets. */
declare module '*.css' {}
