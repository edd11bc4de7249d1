import { readFileSync } from 'node:fs';
import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';

/**
 * The dashboard: one self-contained HTML page (inline CSS and JS, hand-written SVG chart, no
 * CDN, no build step), read once at startup. Copied next to this file by the Nest CLI build
 * (nest-cli.json "assets").
 */
@ApiExcludeController()
@Controller()
export class DashboardController {
  private readonly page = readFileSync(new URL('./dashboard.html', import.meta.url), 'utf8');

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  index(): string {
    return this.page;
  }
}
