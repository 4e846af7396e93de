import neostandard, { plugins } from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'coverage/**', '.tap/**', 'node_modules/**'] }),
  {
    // The public API has no `any`; tests may use it to read frames loosely.
    files: ['lib/**/*.ts', 'plugins/**/*.ts'],
    plugins: { '@typescript-eslint': plugins['typescript-eslint'].plugin },
    rules: { '@typescript-eslint/no-explicit-any': 'error' }
  }
]
